/* Quantized checkpoint import: config.json's quantization_config decides which translation
 * turns the packed tensors (already in the store) into canonical quantized linears. */
#include "formats/qpack.h"

#include <string.h>

llmsq_status llmsq_quantized_checkpoint_import(llmsq_store *s, const char *cfg_path)
{
    LLMSQ_ASSERT(s != NULL && cfg_path != NULL);
    json_error_t err;
    json_t *root = json_load_file(cfg_path, 0, &err);
    if (!root)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: invalid JSON at line %d: %s", cfg_path, err.line, err.text);
    llmsq_status st = LLMSQ_OK;
    json_t *qc = json_object_get(root, "quantization_config");
    if (!qc || json_is_null(qc)) goto out;
    if (!json_is_object(qc)) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: quantization_config is not an object", cfg_path);
        goto out;
    }
    /* GPTQModel's newer configs name the method "method"; transformers and vLLM read quant_method. */
    json_t *jm = json_object_get(qc, "quant_method");
    if (!jm) jm = json_object_get(qc, "method");
    const char *method = json_string_value(jm);
    if (!method)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: quantization_config has no \"quant_method\" string", cfg_path);
    else if (strcmp(method, "gptq") == 0)
        st = llmsq_gptq_import(s, qc, cfg_path);
    else if (strcmp(method, "awq") == 0)
        st = llmsq_awq_import(s, qc, cfg_path);
    else if (strcmp(method, "compressed-tensors") == 0)
        st = llmsq_ct_import(s, qc, cfg_path);
    else
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                         "%s: quant_method \"%s\" is not supported (readable: gptq, awq, compressed-tensors)", cfg_path,
                         method);
out:
    json_decref(root);
    return st;
}
