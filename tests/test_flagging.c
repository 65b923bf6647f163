/*
 * test_flagging.c -- one time-frequency plane's detector (tfflag.h) on synthetic planes:
 * complex Gaussian noise of sigma 1 per part over a sky that varies smoothly with frequency
 * and not at all smoothly with time (a fringe turning tens of radians an integration),
 * with a bandpass slope, and interference of known mask and random phase.
 *  - Recall and false positives: >= 95 % of the interference above 5 sigma flagged, <= 3 %
 *    (in fact far fewer) of the clean samples; noise alone: <= 0.5 %.
 *  - SumThreshold's windows: a run of moderate samples none of which passes alone is found
 *    as a whole, and not when it is shorter.
 *  - SIR: an interval flagged for more than 1 - eta of its length is filled, and no more.
 *  - Samples flagged on entry are never read (NaN there changes nothing).
 *  - Bad options refused.
 */
#define _GNU_SOURCE /* M_PI */
#include "testutil.h"
#include "tfflag.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NT = 24, NF = 256 };

static uint64_t rng = 88172645463325252ULL;
static double uniform01(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
    const double u = uniform01() + 1e-300, v = uniform01();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* A plane with interference; truth[i]: 2 above 5 sigma, 1 weaker, 0 none. */
static void make_plane(float complex *vis, uint8_t *truth, int with_rfi)
{
    memset(truth, 0, NT * NF);
    for (int t = 0; t < NT; t++) {
        const double turn = 2 * M_PI * uniform01(); /* the fringe's phase this integration */
        for (int f = 0; f < NF; f++) {
            const double gain = 1.0 + 0.5 * f / NF; /* a bandpass slope: noise and sky */
            const double complex sky = 3.0 * cexp(I * (turn + 0.3 * f));
            vis[t * NF + f] = (float complex)(gain * (sky + gauss() + I * gauss()));
        }
    }
    if (!with_rfi)
        return;
    const int chans[] = {17, 90, 91, 200};
    for (size_t k = 0; k < sizeof chans / sizeof chans[0]; k++) /* transmitters */
        for (int t = 0; t < NT; t++) {
            const double a = 6.0 + 4.0 * k;
            vis[t * NF + chans[k]] += (float complex)(a * cexp(2 * M_PI * I * uniform01()));
            truth[t * NF + chans[k]] = 2;
        }
    for (int f = 0; f < NF; f++) { /* a burst at 5.5 sigma */
        vis[9 * NF + f] +=
            (float complex)(5.5 * (1.0 + 0.5 * f / NF) * cexp(2 * M_PI * I * uniform01()));
        truth[9 * NF + f] = 2;
    }
    for (int k = 0; k < 40; k++) { /* spikes, 3-15 sigma */
        const int i = (int)(uniform01() * NT * NF);
        const double a = 3.0 + 12.0 * uniform01();
        vis[i] += (float complex)(a * cexp(2 * M_PI * I * uniform01()));
        truth[i] = truth[i] == 2 || a > 5.0 * 1.5 ? 2 : 1;
    }
}

static void score(const uint8_t *truth, const uint8_t *mask, double *recall, double *fpr)
{
    long rfi = 0, hit = 0, clean = 0, fp = 0;
    for (int i = 0; i < NT * NF; i++) {
        if (truth[i] == 2) {
            rfi++;
            hit += mask[i] != 0;
        } else if (truth[i] == 0) {
            clean++;
            fp += mask[i] != 0;
        }
    }
    *recall = rfi ? (double)hit / (double)rfi : 1;
    *fpr = clean ? (double)fp / (double)clean : 0;
}

static void test_recall(void)
{
    static float complex vis[NT * NF];
    static uint8_t truth[NT * NF], mask[NT * NF];
    ct_tfflag_opts o;
    ct_tfflag_opts_default(&o);
    ct_tfflag_work *w = NULL;
    ct_err err;
    REQUIRE_OK(ct_tfflag_work_create(NT, NF, &w, &err), err);
    double worst_recall = 1, worst_fp = 0, worst_clean = 0;
    for (int trial = 0; trial < 5; trial++) {
        make_plane(vis, truth, 1);
        memset(mask, 0, sizeof mask);
        ct_tfflag_plane(w, &o, NT, NF, vis, mask);
        double r, fp;
        score(truth, mask, &r, &fp);
        worst_recall = fmin(worst_recall, r);
        worst_fp = fmax(worst_fp, fp);
        make_plane(vis, truth, 0);
        memset(mask, 0, sizeof mask);
        ct_tfflag_plane(w, &o, NT, NF, vis, mask);
        score(truth, mask, &r, &fp);
        worst_clean = fmax(worst_clean, fp);
    }
    printf("  worst of 5 planes: recall %.4f, false positives %.4f; noise alone %.4f\n",
           worst_recall, worst_fp, worst_clean);
    CHECK(worst_recall >= 0.95, "recall %.4f below 0.95", worst_recall);
    CHECK(worst_fp <= 0.03, "false positives %.4f above 0.03", worst_fp);
    CHECK(worst_clean <= 0.005, "noise alone: %.4f flagged", worst_clean);

    /* Flagged samples are never read: NaN under them changes nothing. */
    make_plane(vis, truth, 1);
    static uint8_t m1[NT * NF], m2[NT * NF];
    memset(m1, 0, sizeof m1);
    for (int f = 40; f < 60; f++)
        m1[5 * NF + f] = 1;
    memcpy(m2, m1, sizeof m1);
    ct_tfflag_plane(w, &o, NT, NF, vis, m1);
    for (int f = 40; f < 60; f++)
        vis[5 * NF + f] = NAN;
    ct_tfflag_plane(w, &o, NT, NF, vis, m2);
    CHECK(memcmp(m1, m2, sizeof m1) == 0, "NaN under the input's flags changed the result");
    ct_tfflag_work_destroy(w);
}

static void test_sumthreshold(void)
{
    ct_tfflag_opts o;
    ct_tfflag_opts_default(&o);
    ct_tfflag_work *w = NULL;
    ct_err err;
    REQUIRE_OK(ct_tfflag_work_create(NT, NF, &w, &err), err);
    static float z[NT * NF];
    static uint8_t m[NT * NF];
    /* A run of 16 samples at z = 2.1 along frequency: none passes 10 alone, the window of 16
     * (10 / 1.5^4 = 1.975 a sample) takes exactly them (15 would sum to 31.5 < 31.6); a run
     * of 4 does not pass its 4.44. */
    memset(z, 0, sizeof z);
    memset(m, 0, sizeof m);
    for (int f = 100; f < 116; f++)
        z[3 * NF + f] = 2.1f;
    for (int f = 10; f < 14; f++)
        z[7 * NF + f] = 2.1f;
    ct_tfflag_sumthreshold(w, &o, NT, NF, z, 10.0, m);
    int run16 = 0, run4 = 0, other = 0;
    for (int i = 0; i < NT * NF; i++) {
        const int in16 = i / NF == 3 && i % NF >= 100 && i % NF < 116;
        const int in4 = i / NF == 7 && i % NF >= 10 && i % NF < 14;
        run16 += in16 && m[i];
        run4 += in4 && m[i];
        other += !in16 && !in4 && m[i];
    }
    CHECK(run16 == 16 && run4 == 0 && other == 0, "runs: 16 -> %d of 16, 4 -> %d, others %d", run16,
          run4, other);
    /* Along time too: a channel at z = 3 in every integration. */
    memset(z, 0, sizeof z);
    memset(m, 0, sizeof m);
    for (int t = 0; t < NT; t++)
        z[t * NF + 50] = 3.0f;
    ct_tfflag_sumthreshold(w, &o, NT, NF, z, 10.0, m);
    int col = 0;
    for (int t = 0; t < NT; t++)
        col += m[t * NF + 50];
    CHECK(col == NT, "a persistent channel: %d of %d integrations", col, NT);
    ct_tfflag_work_destroy(w);
}

static void test_sir(void)
{
    ct_tfflag_work *w = NULL;
    ct_err err;
    REQUIRE_OK(ct_tfflag_work_create(1, 12, &w, &err), err);
    /* 1 1 0 1 1 0 0 0 0 0 0 0: eta 0.2 fills the hole (1 of 5 unflagged) and no more;
     * eta 0.1 leaves it. */
    const uint8_t in[12] = {1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    uint8_t m[12];
    memcpy(m, in, sizeof m);
    ct_tfflag_sir(w, 1, 12, 0.2, m);
    const uint8_t want[12] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    CHECK(memcmp(m, want, sizeof m) == 0, "eta 0.2: %d%d%d%d%d%d", m[0], m[1], m[2], m[3], m[4],
          m[5]);
    memcpy(m, in, sizeof m);
    ct_tfflag_sir(w, 1, 12, 0.1, m);
    CHECK(memcmp(m, in, sizeof m) == 0, "eta 0.1 changed the flags");
    ct_tfflag_work_destroy(w);
}

static void test_bad_options(void)
{
    ct_tfflag_opts o;
    ct_err err;
    ct_tfflag_opts_default(&o);
    CHECK_OK(ct_tfflag_opts_check(&o, &err), err);
    o.eta = 1.0;
    CHECK(ct_tfflag_opts_check(&o, &err) == CT_EINVAL, "eta 1 accepted");
    ct_tfflag_opts_default(&o);
    o.rho = 0.5;
    CHECK(ct_tfflag_opts_check(&o, &err) == CT_EINVAL, "rho 0.5 accepted");
    ct_tfflag_opts_default(&o);
    o.threshold = NAN;
    CHECK(ct_tfflag_opts_check(&o, &err) == CT_EINVAL, "threshold NaN accepted");
    ct_tfflag_work *w = NULL;
    CHECK(ct_tfflag_work_create(0, 10, &w, &err) == CT_EINVAL && !w, "a 0 x 10 plane accepted");
}

int main(void)
{
    RUN(test_recall);
    RUN(test_sumthreshold);
    RUN(test_sir);
    RUN(test_bad_options);
    return tu_finish();
}
