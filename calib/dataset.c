/* Text datasets for evaluation and calibration: plain text, JSONL, WikiText. */
#include "llmsq/calib.h"
#include "llmsq/runtime.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static llmsq_text_kind detect(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (ends_with(path, ".jsonl")) return LLMSQ_TEXT_JSONL;
    if (strncmp(base, "wiki.", 5) == 0 && (ends_with(base, ".raw") || ends_with(base, ".tokens")))
        return LLMSQ_TEXT_WIKITEXT;
    return LLMSQ_TEXT_PLAIN;
}

static llmsq_status push_doc(llmsq_dataset *d, size_t *cap, const char *text, size_t len)
{
    if (d->n_docs == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        char **docs = realloc(d->docs, nc * sizeof *docs);
        if (!docs) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        d->docs = docs;
        size_t *lens = realloc(d->doc_lens, nc * sizeof *lens);
        if (!lens) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        d->doc_lens = lens;
        *cap = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    d->docs[d->n_docs] = copy;
    d->doc_lens[d->n_docs++] = len;
    return LLMSQ_OK;
}

/* Documents are separated by one or more blank lines; their own newlines are kept. */
static llmsq_status split_blank_lines(llmsq_dataset *d)
{
    size_t cap = 0, i = 0, n = d->raw_len;
    const char *r = d->raw;
    while (i < n) {
        while (i < n && r[i] == '\n') i++; /* skip separators */
        if (i >= n) break;
        size_t start = i;
        for (;;) {
            const char *nl = memchr(r + i, '\n', n - i);
            if (!nl) {
                i = n;
                break;
            }
            i = (size_t)(nl - r) + 1;
            if (i >= n || r[i] == '\n') break;
        }
        size_t end = i;
        while (end > start && r[end - 1] == '\n') end--;
        LLMSQ_TRY(push_doc(d, &cap, r + start, end - start));
    }
    return LLMSQ_OK;
}

/* One row per line, newline kept, as the datasets library's WikiText builder yields them;
 * a line holding only whitespace becomes an empty row. */
static llmsq_status split_lines(llmsq_dataset *d)
{
    size_t cap = 0, i = 0, n = d->raw_len;
    while (i < n) {
        const char *nl = memchr(d->raw + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - d->raw) + 1 : n;
        bool blank = true;
        for (size_t j = i; j < end && blank; j++) blank = memchr(" \t\n\r\v\f", d->raw[j], 6) != NULL;
        LLMSQ_TRY(push_doc(d, &cap, d->raw + i, blank ? 0 : end - i));
        i = end;
    }
    return LLMSQ_OK;
}

static llmsq_status split_jsonl(llmsq_dataset *d, const char *path)
{
    size_t cap = 0, i = 0, n = d->raw_len, line = 0;
    while (i < n) {
        const char *nl = memchr(d->raw + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - d->raw) : n;
        line++;
        size_t j = i;
        while (j < end && (d->raw[j] == ' ' || d->raw[j] == '\r' || d->raw[j] == '\t')) j++;
        if (j < end) {
            json_error_t err;
            json_t *obj = json_loadb(d->raw + i, end - i, 0, &err);
            json_t *text = json_object_get(obj, "text");
            if (!json_is_string(text)) {
                json_decref(obj);
                return llmsq_error(LLMSQ_STATUS_FORMAT, "%s:%zu: %s", path, line,
                                   obj ? "no string \"text\" field" : err.text);
            }
            llmsq_status st = push_doc(d, &cap, json_string_value(text), json_string_length(text));
            json_decref(obj);
            LLMSQ_TRY(st);
        }
        i = end + 1;
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_dataset_load(const char *path, llmsq_text_kind kind, llmsq_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->kind = kind == LLMSQ_TEXT_AUTO ? detect(path) : kind;
    LLMSQ_TRY(llmsq_read_file(path, &d->raw, &d->raw_len));
    llmsq_status st = d->kind == LLMSQ_TEXT_JSONL      ? split_jsonl(d, path)
                      : d->kind == LLMSQ_TEXT_WIKITEXT ? split_lines(d)
                                                       : split_blank_lines(d);
    if (st == LLMSQ_OK && d->n_docs == 0) st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: no text", path);
    if (st != LLMSQ_OK) llmsq_dataset_free(d);
    return st;
}

void llmsq_dataset_free(llmsq_dataset *d)
{
    for (size_t i = 0; i < d->n_docs; i++) free(d->docs[i]);
    free(d->docs);
    free(d->doc_lens);
    free(d->raw);
    memset(d, 0, sizeof *d);
}

char *llmsq_dataset_joined(const llmsq_dataset *d, size_t *len)
{
    if (d->kind == LLMSQ_TEXT_PLAIN) {
        char *s = malloc(d->raw_len + 1);
        if (!s) return NULL;
        memcpy(s, d->raw, d->raw_len + 1);
        *len = d->raw_len;
        return s;
    }
    size_t total = 0;
    for (size_t i = 0; i < d->n_docs; i++) total += d->doc_lens[i] + (i ? 2 : 0);
    char *s = malloc(total + 1), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < d->n_docs; i++) {
        if (i) {
            memcpy(p, "\n\n", 2);
            p += 2;
        }
        memcpy(p, d->docs[i], d->doc_lens[i]);
        p += d->doc_lens[i];
    }
    *p = '\0';
    *len = total;
    return s;
}
