/* Quantized checkpoint import (GPTQ, compressed-tensors pack-quantized) into the canonical
 * form. */
#include "llmsq/formats.h"
#include "llmsq/quant.h"

#include <jansson.h>

llmsq_status llmsq_quantized_checkpoint_import(llmsq_store *s, const char *cfg_path)
{
    (void)s;
    json_error_t err;
    json_t *root = json_load_file(cfg_path, 0, &err);
    if (!root) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: invalid JSON: %s", cfg_path, err.text);
    json_t *qc = json_object_get(root, "quantization_config");
    llmsq_status st = LLMSQ_OK;
    if (qc)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: quantized checkpoints are not readable yet", cfg_path);
    json_decref(root);
    return st;
}
