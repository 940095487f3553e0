/* Internal to formats/: the streaming safetensors writer behind llmsq_safetensors_write,
 * used directly by synth.c so a model never has to sit in memory as a whole. */
#ifndef LLMSQ_FORMATS_SAFETENSORS_WRITE_H
#define LLMSQ_FORMATS_SAFETENSORS_WRITE_H

#include "llmsq/formats.h"

/* The open temporary file of a streaming write, handed to the emit callback. */
typedef struct llmsq_st_out llmsq_st_out;

/* Appends bytes of the tensor being emitted. Errors: IO, ARG (more than its nbytes). */
llmsq_status llmsq_st_out_write(llmsq_st_out *o, const void *buf, size_t n);

/* Produces the t->nbytes bytes of tensor t through llmsq_st_out_write. */
typedef llmsq_status (*llmsq_st_emit_fn)(void *ctx, const llmsq_tensor *t, llmsq_st_out *o);

/* As llmsq_safetensors_write, but tensors are descriptors (name, dtype, shape, nbytes;
 * data unused) whose bytes come from emit, called once per tensor in file order.
 * emit == NULL takes the bytes from t->data. */
llmsq_status llmsq_safetensors_write_stream(const char *path, const llmsq_tensor *const *tensors,
                                            size_t n, const char *const *meta, size_t n_meta,
                                            llmsq_st_emit_fn emit, void *ctx);

/* Writes data[0..n) to "<path>.tmp", fsyncs and renames it to path. Errors: IO. */
llmsq_status llmsq_fmt_write_atomic(const char *path, const void *data, size_t n);

/* llmsq_synth_write with an explicit shard limit in bytes of tensor data (tests use small
 * limits to exercise model.safetensors.index.json). */
llmsq_status llmsq_synth_write_sharded(const char *shape, const char *dir, llmsq_dtype dtype,
                                       uint64_t seed, uint64_t max_shard_bytes);

#endif
