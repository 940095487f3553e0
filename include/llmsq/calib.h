/*
 * Calibration and evaluation text: datasets. (The block runner and observers land with the
 * calibration issue.)
 */
#ifndef LLMSQ_CALIB_H
#define LLMSQ_CALIB_H

#include "llmsq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_text_kind {
    LLMSQ_TEXT_AUTO = 0,  /* by extension: .jsonl -> JSONL, wiki.*.raw / *.tokens -> WIKITEXT, else PLAIN */
    LLMSQ_TEXT_PLAIN,     /* documents separated by blank lines */
    LLMSQ_TEXT_JSONL,     /* one JSON object per line, document in its "text" field */
    LLMSQ_TEXT_WIKITEXT   /* WikiText raw/tokens files: one dataset row per line */
} llmsq_text_kind;

typedef struct llmsq_dataset {
    llmsq_text_kind kind;
    char   *raw;       /* the file as read (plain and wikitext) */
    size_t  raw_len;
    size_t  n_docs;
    char  **docs;      /* documents (NUL-terminated, owned) */
    size_t *doc_lens;
} llmsq_dataset;

/* Loads a text file. Errors: IO, FORMAT (invalid UTF-8 is accepted; a JSONL line that is
 * not an object with a string "text" field is rejected with its line number). */
LLMSQ_API llmsq_status llmsq_dataset_load(const char *path, llmsq_text_kind kind,
                                          llmsq_dataset *out);
LLMSQ_API void llmsq_dataset_free(llmsq_dataset *d);

/* The text a whole-corpus protocol encodes once: plain files as they are; WikiText rows
 * joined with "\n\n" (GPTQ's recipe); JSONL documents joined with "\n\n". malloc'd. */
LLMSQ_API char *llmsq_dataset_joined(const llmsq_dataset *d, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_CALIB_H */
