/*
 * convert.h -- combining one observation's 16 subband files into one UVH5 file, in
 * parallel over the ranks of an MPI communicator.
 *
 * The correlator writes an observation as 16 files, sb00 (highest frequency) .. sb15
 * (lowest). ct_convert checks that they form one consistent group and writes one file
 * whose channels ascend in frequency: sb15's first, sb00's last. The output is cut into
 * blocks of whole baseline-times, dealt out to the ranks round robin (block b to rank
 * b mod size); a rank reads its block's rows from all 16 files and writes them as one
 * contiguous piece with collective parallel-HDF5 transfers. (Giving each rank whole
 * subbands instead made every write a strided channel slice: 2.7 x slower.)
 *
 * Output layout: the inputs' header (sb00's, which names the group) with Nfreqs = 16 *
 * channels, freq_array and channel_width ascending, history extended; Data arrays 3-D
 * (Nblts, Nfreqs, Npols) (memo 1.x), uvw_array float64. The file's bytes do not depend
 * on the number of ranks (see ct_uvh5_pcreate).
 *
 * Errors are one line starting with a category word, with CT_EINVAL:
 *   "incomplete_group: ..."   not 16 subbands once each, or a file still being written
 *   "corrupt_input: ..."      a file that is not a readable UVH5 file
 *   "inconsistent_group: ..." files that disagree (times, baselines, antennas, channels,
 *                             pointing) or frequencies that are not contiguous
 * and CT_EIO for failures to read or write. On any error nothing is left at out_path nor
 * any temporary file beside it; inputs are only ever opened read-only.
 */
#ifndef CONTIMG_CONVERT_H
#define CONTIMG_CONVERT_H

#include "error.h"

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

/* Default bound on one rank's data buffers for one block (bytes). */
#define CT_CONVERT_BLOCK_BYTES ((size_t)64 << 20)

typedef struct ct_convert_opts {
    /* Most bytes of buffers per rank for one block of baseline-times (visdata, flags,
     * nsamples together); 0 means CT_CONVERT_BLOCK_BYTES. At least one blt is moved. */
    size_t block_bytes;
} ct_convert_opts;

typedef struct ct_convert_result {
    unsigned long long bytes_read;    /* Data bytes read, all ranks together */
    unsigned long long bytes_written; /* Data bytes written, all ranks together */
    double seconds;                   /* wall time of the whole call */
    int n_ranks;
    int nblts, nfreqs, npols; /* the output's shape */
} ct_convert_result;

/*
 * Collective over comm: every rank calls it with the same arguments and gets the same
 * result and error. inputs: the 16 subband files, in any order (names must follow
 * YYYY-MM-DDTHH:MM:SS_sbNN.hdf5). opts may be NULL; res may be NULL.
 */
ct_code ct_convert(MPI_Comm comm, const char *const *inputs, size_t n_inputs, const char *out_path,
                   const ct_convert_opts *opts, ct_convert_result *res, ct_err *err);

/* The quality gate's thresholds. */
#define CT_QA_MAX_FLAGGED_FRACTION 0.5
#define CT_QA_AUTO_IMAG_RATIO      1e-6

typedef struct ct_qa_result {
    bool passed;                  /* every check below holds */
    bool shapes_ok;               /* header and Data shapes agree, frequencies ascend */
    unsigned long long n_samples; /* visibilities (blt x freq x pol) */
    unsigned long long n_flagged;
    double fraction_flagged;        /* must be < CT_QA_MAX_FLAGGED_FRACTION */
    unsigned long long n_nonfinite; /* unflagged samples with NaN/Inf: must be 0 */
    unsigned long long n_auto;      /* unflagged autocorrelation samples */
    unsigned long long n_auto_bad;  /* of those, |imag| > 1e-6 |real| or real < 0, or real 0
                                       with a nonzero imaginary part: must be 0 */
    unsigned long long n_auto_zero; /* of those, exactly 0: a dead input, which flagging
                                       (flagger.h) flags; not a failure of the file */
    char reason[256];               /* the first failed check, "" when passed */
} ct_qa_result;

/*
 * Checks a UVH5 file (serially, in bounded blocks): shapes consistent, no NaN/Inf in
 * unflagged data, autocorrelations (ant_1 == ant_2) real and positive where unflagged (or
 * exactly zero: a dead input, counted apart),
 * fewer than half the samples flagged. A file that fails the checks is CT_OK with
 * qa->passed false; a file that cannot be read is an error ("corrupt_input: ...").
 */
ct_code ct_convert_qa(const char *path, ct_qa_result *qa, ct_err *err);

#endif
