/* Calibration activations in RAM or spilled to disk with zstd (level 1: activations are
 * written once per block and read a few times, so speed matters more than ratio). */
#include "calib/actstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static llmsq_status gen_open(act_gen *g, int64_t n)
{
    g->file = tmpfile();
    g->off = calloc((size_t)n, sizeof *g->off);
    g->len = calloc((size_t)n, sizeof *g->len);
    if (!g->file) return llmsq_error(LLMSQ_STATUS_IO, "activation spill: cannot create a temporary file: %s", strerror(errno));
    if (!g->off || !g->len) return llmsq_error(LLMSQ_STATUS_NOMEM, "activation spill: out of memory");
    return LLMSQ_OK;
}

static void gen_close(act_gen *g)
{
    if (g->file) fclose(g->file);
    free(g->off);
    free(g->len);
    memset(g, 0, sizeof *g);
}

llmsq_status llmsq_act_init(llmsq_act_store *a, int64_t n, int64_t elems, bool spill, bool two_gens)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->elems = elems;
    if (!spill) {
        a->mem = malloc((size_t)(n * elems) * sizeof(float));
        if (two_gens) a->mem_next = malloc((size_t)(n * elems) * sizeof(float));
        if (!a->mem || (two_gens && !a->mem_next)) {
            free(a->mem), free(a->mem_next);
            a->mem = a->mem_next = NULL;
            return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for %lld calibration activations (%.1f MiB); "
                               "set --max-memory to spill them to disk", (long long)n,
                               (double)(n * elems) * 4 * (two_gens ? 2 : 1) / 1048576.0);
        }
        return LLMSQ_OK;
    }
    a->zcap = ZSTD_compressBound((size_t)elems * sizeof(float));
    a->zbuf = malloc(a->zcap);
    llmsq_status st = a->zbuf ? LLMSQ_OK : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    if (st == LLMSQ_OK) st = gen_open(&a->cur, n);
    if (st == LLMSQ_OK) st = gen_open(&a->next, n);
    if (st != LLMSQ_OK) llmsq_act_free(a);
    return st;
}

void llmsq_act_free(llmsq_act_store *a)
{
    free(a->mem);
    free(a->mem_next);
    free(a->zbuf);
    gen_close(&a->cur);
    gen_close(&a->next);
    memset(a, 0, sizeof *a);
}

llmsq_status llmsq_act_get(llmsq_act_store *a, int64_t i, float *x)
{
    LLMSQ_ASSERT(i >= 0 && i < a->n);
    size_t bytes = (size_t)a->elems * sizeof(float);
    if (a->mem) {
        memcpy(x, a->mem + i * a->elems, bytes);
        return LLMSQ_OK;
    }
    if (fseeko(a->cur.file, (off_t)a->cur.off[i], SEEK_SET) != 0 ||
        fread(a->zbuf, 1, a->cur.len[i], a->cur.file) != a->cur.len[i])
        return llmsq_error(LLMSQ_STATUS_IO, "activation spill: read of sample %lld failed", (long long)i);
    size_t got = ZSTD_decompress(x, bytes, a->zbuf, a->cur.len[i]);
    if (ZSTD_isError(got) || got != bytes)
        return llmsq_error(LLMSQ_STATUS_IO, "activation spill: sample %lld: %s", (long long)i,
                           ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    return LLMSQ_OK;
}

llmsq_status llmsq_act_put(llmsq_act_store *a, int64_t i, const float *x)
{
    LLMSQ_ASSERT(i >= 0 && i < a->n);
    size_t bytes = (size_t)a->elems * sizeof(float);
    if (a->mem) {
        memcpy((a->mem_next ? a->mem_next : a->mem) + i * a->elems, x, bytes);
        return LLMSQ_OK;
    }
    size_t z = ZSTD_compress(a->zbuf, a->zcap, x, bytes, 1);
    if (ZSTD_isError(z)) return llmsq_error(LLMSQ_STATUS_IO, "activation spill: %s", ZSTD_getErrorName(z));
    if (i == 0 && fseeko(a->next.file, 0, SEEK_SET) != 0)
        return llmsq_error(LLMSQ_STATUS_IO, "activation spill: seek failed");
    a->next.off[i] = i ? a->next.off[i - 1] + a->next.len[i - 1] : 0;
    a->next.len[i] = z;
    if (fwrite(a->zbuf, 1, z, a->next.file) != z)
        return llmsq_error(LLMSQ_STATUS_IO, "activation spill: write failed (disk full?): %s", strerror(errno));
    return LLMSQ_OK;
}

llmsq_status llmsq_act_swap(llmsq_act_store *a)
{
    if (a->mem) {
        float *t = a->mem_next;
        a->mem_next = t ? a->mem : NULL;
        a->mem = t ? t : a->mem;
        return LLMSQ_OK;
    }
    if (fflush(a->next.file) != 0) return llmsq_error(LLMSQ_STATUS_IO, "activation spill: flush failed");
    act_gen t = a->cur;
    a->cur = a->next;
    a->next = t;
    return LLMSQ_OK;
}
