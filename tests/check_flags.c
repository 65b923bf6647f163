/*
 * check_flags.c -- a flagged observation's flags against the interference the simulator put
 * in it (simulate.h: ct_sim_rfi, ct_sim_rfi_dead_station).
 *
 *   check_flags FLAGGED ORIGINAL SIM_DIR ANTENNAS CHANNELS TIMES RFI_SEED RFI_JY NOISE_JY
 *               MIN_RECALL MAX_FALSE
 *
 * FLAGGED: the combined observation ORIGINAL after `contimg flag`, whose data and nsamples
 * must be ORIGINAL's bit for bit and whose flags must hold ORIGINAL's; SIM_DIR: the 16
 * subband files it
 * was made from (their frequencies place each combined channel in its subband). A
 * cross-correlation sample (baseline-time, channel) is interference when, in some
 * polarization, what ct_sim_rfi added exceeds 5 x NOISE_JY (the noise's sigma per part),
 * or when one of its antennas is the dead one; it is clean when nothing was added in any
 * polarization. Prints the recall (interference flagged), its part for the dead antenna,
 * the transmitters, the burst and the spikes, and the false positives (clean samples
 * flagged) as JSON; exits 0 when the data are untouched, recall >= MIN_RECALL and
 * false <= MAX_FALSE, 1 otherwise, 2 on misuse.
 */
#define _GNU_SOURCE
#include "simulate.h"
#include "uvh5.h"

#include <complex.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KINDS = 4 }; /* dead, transmitter (persistent channel), burst (one time), spike */

int main(int argc, char **argv)
{
    if (argc != 12) {
        fprintf(stderr, "usage: check_flags FLAGGED ORIGINAL SIM_DIR ANTENNAS CHANNELS TIMES "
                        "RFI_SEED RFI_JY NOISE_JY MIN_RECALL MAX_FALSE\n");
        return 2;
    }
    ct_sim_config cfg = ct_sim_defaults();
    const char *flagged_path = argv[1], *original_path = argv[2], *sim_dir = argv[3];
    cfg.n_antennas = atoi(argv[4]);
    cfg.n_channels = atoi(argv[5]);
    cfg.n_times = atoi(argv[6]);
    cfg.rfi_seed = strtoull(argv[7], NULL, 10);
    cfg.rfi_jy = atof(argv[8]);
    const double noise = atof(argv[9]), min_recall = atof(argv[10]), max_false = atof(argv[11]);
    const int dead = ct_sim_rfi_dead_station(&cfg);
    ct_err err;
    /* Each subband file's frequencies, by subband (the file name's _sbNN). */
    double *sbfreq = calloc(16 * (size_t)cfg.n_channels, sizeof *sbfreq);
    DIR *d = opendir(sim_dir);
    if (!d || !sbfreq) {
        fprintf(stderr, "check_flags: cannot read %s\n", sim_dir);
        return 2;
    }
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *s = strstr(e->d_name, "_sb");
        if (!s || !strstr(e->d_name, ".hdf5"))
            continue;
        const int sb = atoi(s + 3);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", sim_dir, e->d_name);
        ct_uvh5_file *f = NULL;
        if (sb < 0 || sb >= 16 || ct_uvh5_open(path, &f, &err) != CT_OK) {
            fprintf(stderr, "check_flags: %s\n", err.msg);
            return 2;
        }
        const ct_uvh5_header *h = ct_uvh5_header_get(f);
        for (int c = 0; c < h->Nfreqs && c < cfg.n_channels; c++)
            sbfreq[(size_t)sb * cfg.n_channels + c] = h->freq_array[c];
        found++;
        ct_uvh5_close(f, NULL);
    }
    closedir(d);
    ct_uvh5_file *f = NULL, *orig = NULL;
    if (found != 16 || ct_uvh5_open(flagged_path, &f, &err) != CT_OK ||
        ct_uvh5_open(original_path, &orig, &err) != CT_OK) {
        fprintf(stderr, "check_flags: %d subband files; %s\n", found, found == 16 ? err.msg : "");
        return 2;
    }
    const ct_uvh5_header *h = ct_uvh5_header_get(f);
    const int nf = h->Nfreqs, np = h->Npols;
    int *sb_of = malloc((size_t)nf * sizeof *sb_of), *ch_of = malloc((size_t)nf * sizeof *ch_of);
    for (int c = 0; c < nf; c++) {
        sb_of[c] = -1;
        for (int k = 0; k < 16 * cfg.n_channels; k++)
            if (sbfreq[k] == h->freq_array[c]) {
                sb_of[c] = k / cfg.n_channels;
                ch_of[c] = k % cfg.n_channels;
            }
        if (sb_of[c] < 0) {
            fprintf(stderr, "check_flags: channel %d (%.6f MHz) is in no subband file\n", c,
                    h->freq_array[c] / 1e6);
            return 2;
        }
    }
    const ct_uvh5_header *ho = ct_uvh5_header_get(orig);
    if (ho->Nblts != h->Nblts || ho->Nfreqs != nf || ho->Npols != np) {
        fprintf(stderr, "check_flags: the two files differ in shape\n");
        return 1;
    }
    const size_t row = (size_t)nf * (size_t)np;
    bool *fl = malloc(row * sizeof *fl), *fo = malloc(row * sizeof *fo);
    float *v = malloc(2 * row * sizeof *v), *vo = malloc(2 * row * sizeof *vo);
    float *n = malloc(row * sizeof *n), *no = malloc(row * sizeof *no);
    long data_differ = 0, flags_lost = 0;
    long rfi = 0, rfi_hit = 0, clean = 0, clean_hit = 0, kind[KINDS] = {0}, kind_hit[KINDS] = {0};
    for (int blt = 0; blt < h->Nblts; blt++) {
        const int a1 = h->ant_1_array[blt], a2 = h->ant_2_array[blt];
        if (ct_uvh5_read_blts(f, (size_t)blt, 1, v, fl, n, &err) != CT_OK ||
            ct_uvh5_read_blts(orig, (size_t)blt, 1, vo, fo, no, &err) != CT_OK) {
            fprintf(stderr, "check_flags: %s\n", err.msg);
            return 2;
        }
        data_differ +=
            memcmp(v, vo, 2 * row * sizeof *v) != 0 || memcmp(n, no, row * sizeof *n) != 0;
        for (size_t i = 0; i < row; i++)
            flags_lost += fo[i] && !fl[i];
        if (a1 == a2)
            continue;
        const int t = blt / h->Nbls;
        for (int c = 0; c < nf; c++) {
            double amax = 0;
            bool any = false, is_dead = false;
            for (int p = 0; p < np && p < 2; p++) {
                double complex add;
                any |= ct_sim_rfi(&cfg, dead, sb_of[c], t, a1, a2, ch_of[c], p, &add, &is_dead);
                amax = fmax(amax, cabs(add));
            }
            const bool flagged = fl[(size_t)c * np];
            if (is_dead || amax > 5 * noise) {
                rfi++;
                rfi_hit += flagged;
                /* Which kind: the dead antenna; else a transmitter (the same channel in
                 * the next baseline-time's sample too), the burst (every channel of this
                 * time), or a spike. */
                int k = 3;
                if (is_dead)
                    k = 0;
                else {
                    double complex a2c;
                    bool dd;
                    const int other = c == 0 ? 1 : 0;
                    if (ct_sim_rfi(&cfg, dead, sb_of[(c + 1) % nf], t, a1, a2, ch_of[(c + 1) % nf],
                                   0, &a2c, &dd) &&
                        ct_sim_rfi(&cfg, dead, sb_of[other], t, a1, a2, ch_of[other], 0, &a2c,
                                   &dd) &&
                        ct_sim_rfi(&cfg, dead, sb_of[(c + nf / 2) % nf], t, a1, a2,
                                   ch_of[(c + nf / 2) % nf], 0, &a2c, &dd))
                        k = 2; /* every channel at this time has some: the burst */
                    else if (ct_sim_rfi(&cfg, dead, sb_of[c], (t + 1) % cfg.n_times, a1, a2,
                                        ch_of[c], 0, &a2c, &dd))
                        k = 1;
                }
                kind[k]++;
                kind_hit[k] += flagged;
            } else if (!any) {
                clean++;
                clean_hit += flagged;
            }
        }
    }
    ct_uvh5_close(f, NULL);
    ct_uvh5_close(orig, NULL);
    const double recall = rfi ? (double)rfi_hit / (double)rfi : 1.0,
                 fpr = clean ? (double)clean_hit / (double)clean : 0.0;
    const char *names[KINDS] = {"dead", "transmitter", "burst", "spike"};
    printf("{\"rows_with_data_changed\": %ld, \"input_flags_lost\": %ld, \"interference\": %ld, "
           "\"recall\": %.5f, \"clean\": %ld, \"false_positive\": %.5f",
           data_differ, flags_lost, rfi, recall, clean, fpr);
    for (int k = 0; k < KINDS; k++)
        printf(", \"%s\": [%ld, %.5f]", names[k], kind[k],
               kind[k] ? (double)kind_hit[k] / (double)kind[k] : 1.0);
    printf("}\n");
    free(sbfreq);
    free(sb_of);
    free(ch_of);
    free(fl);
    free(fo);
    free(v);
    free(vo);
    free(n);
    free(no);
    return data_differ == 0 && flags_lost == 0 && recall >= min_recall && fpr <= max_false ? 0 : 1;
}
