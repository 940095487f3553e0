/* Text datasets: plain (blank-line documents), WikiText rows, JSONL. */
#include "testutil.h"

#include <string.h>

static char *write_tmp(const char *name, const char *text)
{
    char *dir = tu_tmpdir("dataset");
    char *p = llmsq_path_join(dir, name);
    tu_write_file(p, text, strlen(text));
    free(dir);
    return p;
}

START_TEST(test_plain_documents)
{
    char *p = write_tmp("a.txt", "\n\nOne.\nStill one.\n\n\nTwo.\n\nThree");
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    ck_assert_int_eq(d.kind, LLMSQ_TEXT_PLAIN);
    ck_assert_uint_eq(d.n_docs, 3);
    ck_assert_str_eq(d.docs[0], "One.\nStill one.");
    ck_assert_str_eq(d.docs[1], "Two.");
    ck_assert_str_eq(d.docs[2], "Three");
    size_t n;
    char *j = llmsq_dataset_joined(&d, &n); /* plain text is scored as it is */
    ck_assert_str_eq(j, "\n\nOne.\nStill one.\n\n\nTwo.\n\nThree");
    free(j);
    llmsq_dataset_free(&d);
    free(p);
}
END_TEST

/* Rows as the datasets library yields wiki.*.raw: lines with their newline, blank -> "". */
START_TEST(test_wikitext_rows)
{
    char *p = write_tmp("wiki.test.raw", " \n = Title = \n \n Text here .\n");
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    ck_assert_int_eq(d.kind, LLMSQ_TEXT_WIKITEXT);
    ck_assert_uint_eq(d.n_docs, 4);
    ck_assert_str_eq(d.docs[0], "");
    ck_assert_str_eq(d.docs[1], " = Title = \n");
    size_t n;
    char *j = llmsq_dataset_joined(&d, &n);
    ck_assert_str_eq(j, "\n\n = Title = \n\n\n\n\n Text here .\n");
    ck_assert_uint_eq(n, strlen(j));
    free(j);
    llmsq_dataset_free(&d);
    free(p);
}
END_TEST

START_TEST(test_jsonl)
{
    char *p = write_tmp("c.jsonl", "{\"text\": \"a\\nb\", \"url\": 1}\n\n{\"text\": \"\\u00e9\"}\n");
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    ck_assert_uint_eq(d.n_docs, 2);
    ck_assert_str_eq(d.docs[0], "a\nb");
    ck_assert_str_eq(d.docs[1], "\xc3\xa9");
    llmsq_dataset_free(&d);
    free(p);
    p = write_tmp("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_STATUS_FORMAT);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "bad.jsonl:2"));
    free(p);
}
END_TEST

START_TEST(test_c4_sample)
{
    TU_SHARED_OR_SKIP(p, "data/c4/c4-train.00000-of-01024.first1000.jsonl");
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    ck_assert_uint_eq(d.n_docs, 1000);
    llmsq_dataset_free(&d);
    free(p);
}
END_TEST

START_TEST(test_missing_and_empty)
{
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load("/nonexistent/t.txt", LLMSQ_TEXT_AUTO, &d), LLMSQ_STATUS_IO);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "/nonexistent/t.txt"));
    char *p = write_tmp("empty.txt", "\n\n");
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_STATUS_FORMAT);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_plain_documents);
    tcase_add_test(tc, test_wikitext_rows);
    tcase_add_test(tc, test_jsonl);
    tcase_add_test(tc, test_c4_sample);
    tcase_add_test(tc, test_missing_and_empty);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
