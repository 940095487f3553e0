/* Internal: output directories of the checkpoint writers (synth, quantized/sparse). Each
 * writer builds "<dir>.tmp" and renames it when complete; these helpers check the target and
 * clear a ".tmp" left by an interrupted run without ever deleting a file llmsq did not write. */
#ifndef LLMSQ_FORMATS_OUTDIR_H
#define LLMSQ_FORMATS_OUTDIR_H

#include "llmsq/formats.h"

/* Deletes `dir` after removing the files in it that is_ours() accepts. is_ours sees each name
 * with a trailing ".tmp" removed (the atomic writers' temporaries). A directory holding any
 * other file is left as it is: ARG, naming `who` ("llmsq synth"). */
llmsq_status llmsq_outdir_remove_ours(const char *dir, bool (*is_ours)(const char *name), const char *who);

#endif
