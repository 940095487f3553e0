/* Opens any supported checkpoint: HF directory, .gguf file, llama2.c .bin file. */
#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool read_magic(const char *path, uint8_t magic[4])
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* HF directory: config.json + safetensors; the tokenizer when one is there. */
static llmsq_status open_hf_dir(const char *dir, llmsq_store *s, llmsq_config *cfg, llmsq_tokenizer **tok)
{
    char *cfg_path = llmsq_path_join(dir, "config.json");
    llmsq_status st = llmsq_is_file(cfg_path)
                          ? llmsq_hf_config_read(cfg_path, cfg)
                          : llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no config.json (not a Hugging Face model directory)", dir);
    free(cfg_path);
    if (st != LLMSQ_OK) return st;
    LLMSQ_TRY(llmsq_safetensors_read_dir(s, dir));
    cfg_path = llmsq_path_join(dir, "config.json");
    st = llmsq_quantized_checkpoint_import(s, cfg_path);
    free(cfg_path);
    if (st != LLMSQ_OK) return st;
    /* tokenizer.json first, as transformers loads it; then tokenizer.model, GPT-2's files. */
    st = llmsq_tokenizer_load(dir, tok);
    return st == LLMSQ_STATUS_NOT_FOUND ? LLMSQ_OK : st;
}

llmsq_status llmsq_checkpoint_open(const char *path, llmsq_store **store, llmsq_config *cfg, llmsq_tokenizer **tok)
{
    LLMSQ_ASSERT(path && store && cfg && tok);
    *store = NULL;
    *tok = NULL;
    memset(cfg, 0, sizeof *cfg);
    llmsq_store *s = llmsq_store_create();
    if (!s) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    llmsq_status st;
    uint8_t magic[4];
    if (llmsq_is_dir(path)) {
        st = open_hf_dir(path, s, cfg, tok);
    } else if (!llmsq_is_file(path)) {
        st = llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no such file or directory", path);
    } else if (has_suffix(path, ".gguf") || (read_magic(path, magic) && memcmp(magic, "GGUF", 4) == 0)) {
        st = llmsq_gguf_read_model(path, s, cfg, tok);
    } else if (has_suffix(path, ".bin")) {
        st = llmsq_llama2c_read_model(path, s, cfg, tok);
    } else {
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                         "%s: unknown model format (expected a Hugging Face directory, a .gguf file or a llama2.c .bin)",
                         path);
    }
    if (st != LLMSQ_OK) {
        llmsq_store_destroy(s);
        llmsq_tokenizer_free(*tok);
        *tok = NULL;
        return st;
    }
    *store = s;
    return LLMSQ_OK;
}

llmsq_status llmsq_model_open(const char *path, llmsq_model **out)
{
    llmsq_store *s;
    llmsq_config cfg;
    llmsq_tokenizer *tok;
    LLMSQ_TRY(llmsq_checkpoint_open(path, &s, &cfg, &tok));
    return llmsq_model_create(&cfg, s, tok, path, out);
}

llmsq_status llmsq_model_open_packed(const char *path, const llmsq_pack_opts *opts, llmsq_model **out)
{
    llmsq_store *s;
    llmsq_config cfg;
    llmsq_tokenizer *tok;
    LLMSQ_TRY(llmsq_checkpoint_open(path, &s, &cfg, &tok));
    return llmsq_model_create_packed(&cfg, s, tok, path, opts, out);
}
