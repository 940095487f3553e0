/* Calibration: window sampling (GPTQ's recipe, seeded) and the runner's statistics. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define TRAIN "data/tinystories/train_prefix.txt"
#define C4 "data/c4/c4-train.00000-of-01024.first1000.jsonl"

static llmsq_model *open_model(void)
{
    char *p = tu_shared(HF);
    if (!p) return NULL;
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(p, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    free(p);
    return m;
}

static int32_t *sample(const llmsq_model *m, const char *rel, int64_t n, int64_t L, uint64_t seed, llmsq_status *st)
{
    char *p = tu_shared(rel);
    ck_assert_ptr_nonnull(p);
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(p, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.nsamples = n, cp.seqlen = L, cp.seed = seed;
    int32_t *t = NULL;
    *st = llmsq_calib_sample(llmsq_model_tokenizer(m), &d, &cp, &t);
    llmsq_dataset_free(&d);
    free(p);
    return t;
}

START_TEST(test_sampling_is_seeded)
{
    llmsq_model *m = open_model();
    if (!m) return;
    llmsq_status st;
    int32_t *a = sample(m, TRAIN, 16, 64, 7, &st), *b = sample(m, TRAIN, 16, 64, 7, &st), *c = sample(m, TRAIN, 16, 64, 8, &st);
    ck_assert_int_eq(st, LLMSQ_OK);
    ck_assert(memcmp(a, b, 16 * 64 * sizeof *a) == 0);
    ck_assert(memcmp(a, c, 16 * 64 * sizeof *a) != 0);
    /* each window is a contiguous slice of the encoded text: windows are not re-tokenized */
    for (int64_t i = 0; i < 16 * 64; i++) ck_assert(a[i] >= 0 && a[i] < 512);
    free(a), free(b), free(c);
    llmsq_model_free(m);
}
END_TEST

/* JSONL: windows come from documents longer than the window (C4's first 1000 documents). */
START_TEST(test_sampling_jsonl_documents)
{
    llmsq_model *m = open_model();
    char *c4 = tu_shared(C4);
    if (!m || !c4) {
        llmsq_model_free(m);
        free(c4);
        return;
    }
    llmsq_status st;
    int32_t *t = sample(m, C4, 8, 256, 0, &st);
    ck_assert_msg(st == LLMSQ_OK, "%s", llmsq_last_error());
    free(t);
    /* no C4 document of this sample has 100000 tokens: a clear error, not a hang */
    t = sample(m, C4, 1, 100000, 0, &st);
    ck_assert_int_eq(st, LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "longer than"));
    t = sample(m, TRAIN, 1, 1000000, 0, &st);
    ck_assert_int_eq(st, LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "too short"));
    free(c4);
    llmsq_model_free(m);
}
END_TEST

/* A pass that checks the statistics it is handed, then quantizes with RTN. */
typedef struct check_ctx {
    int64_t rows, jobs;
} check_ctx;

static llmsq_status check_run(void *user, const llmsq_linear_job *job, llmsq_qlinear **out)
{
    check_ctx *c = user;
    const llmsq_channel_stats *s = job->stats;
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(job->H);
    ck_assert_int_eq(s->n, job->in);
    ck_assert_int_eq(s->rows, c->rows);
    for (int64_t j = 0; j < job->in; j++) {
        /* H_jj = 2/N sum x_j^2, accumulated independently (dsyrk) */
        double want = 2.0 * s->sq_sum[j] / (double)s->rows;
        ck_assert_msg(fabs(job->H[j * job->in + j] - want) <= 1e-9 * want + 1e-300, "%s channel %lld", job->module,
                      (long long)j);
        ck_assert(s->abs_max[j] * s->abs_max[j] <= s->sq_sum[j] * (1 + 1e-12));
        ck_assert(s->abs_sum[j] <= s->abs_max[j] * (double)s->rows * (1 + 1e-12));
    }
    c->jobs++;
    llmsq_quant_params p = llmsq_quant_default_params();
    p.group_size = -1;
    return llmsq_rtn_quantize(job->W, job->out, job->in, &p, out);
}

START_TEST(test_runner_channel_stats)
{
    llmsq_model *m = open_model();
    if (!m) return;
    llmsq_status st;
    int32_t *t = sample(m, TRAIN, 4, 64, 0, &st);
    check_ctx cc = {.rows = 4 * 64};
    llmsq_calib_pass pass = {.name = "check", .needs_hessian = true, .needs_channel_stats = true, .run = check_run,
                             .user = &cc};
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.nsamples = 4, cp.seqlen = 64, cp.progress = false;
    ck_assert_msg(llmsq_calib_run(m, t, &cp, &pass) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(cc.jobs, 5 * 7);
    free(t);
    llmsq_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("calib");
    TCase *tc = tcase_create("calib");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sampling_is_seeded);
    tcase_add_test(tc, test_sampling_jsonl_documents);
    tcase_add_test(tc, test_runner_channel_stats);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
