/*
 * uvh5.h -- reading and writing UVH5 visibility files (the DSA-110 correlator's format).
 *
 * Owns: the on-disk layout of one UVH5 file (pyuvdata memo 1.0/1.1): the Header group of
 * scalar and array datasets, the Data group (visdata as a compound {r, i} of float32,
 * flags as an int8 enum FALSE/TRUE, nsamples float32), validation of what a reader is
 * handed, and atomic output (a file appears at its final path complete or not at all).
 * It does not own the science: uvw, times and frequencies are the caller's numbers.
 *
 * Memory stays bounded: data move in contiguous ranges of baseline-times (blts), all
 * frequencies and polarizations of each, never the whole file at once.
 *
 * Data buffers in memory are row-major [blt][freq][pol]; visibilities are interleaved
 * float pairs (re, im), the layout of a C `float complex` array.
 *
 * HDF5 prints its error stack to stderr by default. Every public function here turns that
 * printing off for the default error stack while it runs and puts the caller's setting
 * back before it returns, so errors reach the caller only as a ct_err and no HDF5 state
 * outlives the call. (HDF5's auto-print setting is per thread in thread-safe builds and
 * process-wide otherwise; this module is not meant to be called concurrently with other
 * HDF5 users in one process without a thread-safe libhdf5.)
 */
#ifndef CONTIMG_UVH5_H
#define CONTIMG_UVH5_H

#include "error.h"

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

/* One entry of Header/extra_keywords: a number or a string. DSA-110 puts
 * phase_center_dec (radians), ha_phase_center (0) and phase_center_epoch ("HADEC") here. */
typedef struct ct_uvh5_keyword {
    char *key;      /* owned; a plain HDF5 link name (no '/') */
    bool is_string; /* selects str or value */
    double value;   /* numbers (integer or float on disk) */
    char *str;      /* owned; NULL unless is_string */
} ct_uvh5_keyword;

/*
 * What a UVH5 file's Header carries. Field names follow the memo. A header owns every
 * pointer in it: strings and arrays are malloc'd, and ct_uvh5_header_free() releases them
 * all. Shapes (row-major):
 *   antenna_numbers[Nants_telescope], antenna_names[Nants_telescope] (strings),
 *   antenna_positions[Nants_telescope][3] (m, ECEF offsets from the telescope location),
 *   ant_1_array, ant_2_array, time_array (JD), integration_time (s): [Nblts],
 *   uvw_array[Nblts][3] (m, double in memory whatever the file stores),
 *   freq_array (Hz), channel_width (Hz): [Nfreqs], spw_array[Nspws],
 *   polarization_array[Npols] (AIPS codes: -5 XX, -6 YY, -7 XY, -8 YX).
 */
typedef struct ct_uvh5_header {
    int Nants_data, Nants_telescope, Nbls, Nblts, Ntimes, Nfreqs, Npols, Nspws;
    double latitude, longitude, altitude; /* degrees, degrees, metres */
    char *telescope_name, *instrument, *history;
    char *version;     /* "1.1"-style; the writer uses "1.1" when NULL */
    char *phase_type;  /* "drift" for DSA-110; the writer uses "drift" when NULL */
    char *object_name; /* optional: NULL when the file has none */
    int *antenna_numbers;
    char **antenna_names;
    double *antenna_positions;
    int *ant_1_array, *ant_2_array;
    double *time_array, *integration_time, *uvw_array;
    double *freq_array, *channel_width;
    int *spw_array;
    bool flex_spw; /* always false here: one spectral window */
    int *polarization_array;
    int n_extra;
    ct_uvh5_keyword *extra;
} ct_uvh5_header;

/* Frees every string and array the header owns and zeroes it; the struct itself is the
 * caller's. Safe on a zeroed header and on NULL. */
void ct_uvh5_header_free(ct_uvh5_header *h);

/* Checks a header in memory: positive counts, Nspws == 1, Nbls * Ntimes == Nblts, every
 * required pointer set, keyword names usable as HDF5 link names. CT_EINVAL otherwise. */
ct_code ct_uvh5_header_check(const ct_uvh5_header *h, ct_err *err);

/* Adds or replaces an extra keyword; the header copies key and string. */
ct_code ct_uvh5_keyword_set_double(ct_uvh5_header *h, const char *key, double value, ct_err *err);
ct_code ct_uvh5_keyword_set_string(ct_uvh5_header *h, const char *key, const char *value,
                                   ct_err *err);
/* The keyword named key, or NULL. The pointer lives as long as the header. */
const ct_uvh5_keyword *ct_uvh5_keyword_find(const ct_uvh5_header *h, const char *key);

/* How the Data arrays and uvw are laid out on disk. */
typedef struct ct_uvh5_write_opts {
    bool shape_4d;    /* true: old (Nblts, 1, Nfreqs, Npols), as DSA-110 writes;
                         false: (Nblts, Nfreqs, Npols), memo 1.0 and later */
    bool uvw_float32; /* true: uvw_array stored float32, as DSA-110 writes; false: float64 */
} ct_uvh5_write_opts;

/* An open UVH5 file, for writing (ct_uvh5_create) or for reading (ct_uvh5_open). */
typedef struct ct_uvh5_file ct_uvh5_file;

/*
 * Starts writing a UVH5 file that will appear at `path` only when ct_uvh5_close succeeds.
 * Until then it is written under a temporary name in the same directory
 * (PATH.tmp-<pid>-<n>), so a reader never sees a half-written file. Writes the whole
 * Header from *h (which the caller keeps) and creates the chunked Data datasets.
 * opts NULL means the DSA-110 layout (4-D, float32 uvw).
 * CT_EINVAL for a bad header, CT_EIO when the file cannot be written.
 */
ct_code ct_uvh5_create(const char *path, const ct_uvh5_header *h, const ct_uvh5_write_opts *opts,
                       ct_uvh5_file **out, ct_err *err);

/*
 * Writes baseline-times [blt_start, blt_start + n_blt), every frequency and polarization:
 * vis holds 2 * n_blt * Nfreqs * Npols floats (re, im pairs), flags and nsamples
 * n_blt * Nfreqs * Npols each. All three are required. Ranges may come in any order;
 * every blt must be written before ct_uvh5_close.
 */
ct_code ct_uvh5_write_blts(ct_uvh5_file *f, size_t blt_start, size_t n_blt, const float *vis,
                           const bool *flags, const float *nsamples, ct_err *err);

/*
 * Finishes a file and frees the handle, which is invalid afterwards whatever the result.
 * For a writer: fails with CT_ESTATE (and leaves nothing at the path) when some blt was
 * never written; otherwise closes the HDF5 file, fsyncs it and renames it onto the path,
 * replacing any file there. On any failure the temporary file is removed.
 * For a reader: closes the file. NULL is a no-op.
 */
ct_code ct_uvh5_close(ct_uvh5_file *f, ct_err *err);

/* Gives up: a writer's temporary file is deleted and nothing appears at the path; a reader
 * is just closed. Frees the handle. NULL is a no-op. */
void ct_uvh5_abort(ct_uvh5_file *f);

/*
 * Opens a UVH5 file for reading and validates its Header against its Data: every required
 * dataset present with the shape the counts imply, Nbls * Ntimes == Nblts, the Data
 * arrays 4-D (Nblts, 1, Nfreqs, Npols) or 3-D (Nblts, Nfreqs, Npols) with matching shapes
 * and types. Errors: CT_ENOTFOUND when nothing is at the path, CT_EIO when it cannot be
 * read at all (permissions), CT_EINVAL with a message starting "corrupt input: " naming
 * the dataset for anything damaged, missing or inconsistent.
 */
ct_code ct_uvh5_open(const char *path, ct_uvh5_file **out, ct_err *err);

/* Opens each of n files as ct_uvh5_open would -- header and Data datasets, and the first
 * and last baseline-time of the data -- in a child process, and returns the first one's error
 * (corrupt input: the HDF5 library crashed on it, or the file is refused), or CT_OK. HDF5 1.10
 * trusts the files it decodes: a damaged object header can make it read out of bounds or write
 * through a failed allocation (fuzz_uvh5 found both), which in the caller would take down an MPI
 * job and every task in it. The engine's coordinator probes a task's UVH5 inputs before it
 * dispatches the task (ct_stage_prepare). */
ct_code ct_uvh5_probe(const char *const *paths, size_t n, ct_err *err);

/* The header read by ct_uvh5_open, owned by the handle and valid until it is closed.
 * For a writer, NULL. */
const ct_uvh5_header *ct_uvh5_header_get(const ct_uvh5_file *f);

/* The layout of the file as found on disk (reader) or as being written (writer). */
ct_uvh5_write_opts ct_uvh5_layout(const ct_uvh5_file *f);

/*
 * Reads baseline-times [blt_start, blt_start + n_blt) into buffers shaped as for
 * ct_uvh5_write_blts. Any of vis, flags, nsamples may be NULL to skip that array.
 * CT_EINVAL for a range outside the file, CT_EIO when HDF5 cannot read the data.
 */
ct_code ct_uvh5_read_blts(ct_uvh5_file *f, size_t blt_start, size_t n_blt, float *vis, bool *flags,
                          float *nsamples, ct_err *err);

/* Sets more flags on n_blt baseline-times from blt_start: flags is shaped as for
 * ct_uvh5_read_blts and holds the source's flags when called. */
typedef void (*ct_uvh5_flag_fn)(void *ctx, size_t blt_start, size_t n_blt, bool *flags);

/*
 * Writes src again at dst with more flags and nothing else changed: every byte of src is
 * copied (the kernel's copy, see ct_copy_file), then Data/flags is rewritten block by
 * block from src's flags as mark leaves them. Flags src keeps filtered (pyuvdata's LZF)
 * are stored again unfiltered, since contimg has no LZF encoder. The file is made beside
 * dst, fsync'd and renamed: dst appears whole or not at all. One process; errors as for
 * ct_uvh5_open (src) and CT_EIO (dst).
 */
ct_code ct_uvh5_copy_reflag(const char *src, const char *dst, ct_uvh5_flag_fn mark, void *ctx,
                            ct_err *err);

/*
 * The parallel writer (MPI-IO through parallel HDF5), for combining files across ranks.
 * Every call is collective over the communicator given to ct_uvh5_pcreate: all ranks make
 * it, in the same order, with the same header.
 *
 * The file is written exactly at `path` (no rename: the caller chooses a temporary name
 * and moves it into place), always in the memo 1.x layout: 3-D Data arrays
 * (Nblts, Nfreqs, Npols), uvw_array float64. Every dataset is contiguous, allocated at
 * creation and never filled, and no group or dataset carries a time stamp, so the bytes
 * of the file depend only on the header and the data, not on the number of ranks or the
 * time of day.
 */
ct_code ct_uvh5_pcreate(MPI_Comm comm, const char *path, const ct_uvh5_header *h,
                        ct_uvh5_file **out, ct_err *err);

/*
 * Collective: writes the block of baseline-times [blt_start, +n_blt) and channels
 * [freq_start, +n_freq), all polarizations, from buffers shaped [n_blt][n_freq][Npols]
 * (vis as re, im float pairs). A rank with nothing to write in this round passes
 * n_blt = 0 (buffers may then be NULL) and still makes the call.
 */
ct_code ct_uvh5_pwrite(ct_uvh5_file *f, size_t blt_start, size_t n_blt, size_t freq_start,
                       size_t n_freq, const float *vis, const bool *flags, const float *nsamples,
                       ct_err *err);

/* Collective: closes the file (left at its path) and frees the handle. ct_uvh5_abort also
 * closes a parallel writer (collectively) but does not delete its file: the caller owns
 * the name. */
ct_code ct_uvh5_pclose(ct_uvh5_file *f, ct_err *err);

/* Collective: the parallel writer made atomic. ct_uvh5_pcreate_beside creates a
 * temporary file beside final_path, named by rank 0 (tmp receives the name on
 * every rank), nothing left behind on failure; ct_uvh5_pcommit then agrees the
 * writes' outcome rc over comm, closes the file, and with all well has rank 0
 * fsync it and rename it onto final_path, otherwise remove it. Both return the
 * outcome agreed on every rank. */
ct_code ct_uvh5_pcreate_beside(MPI_Comm comm, const char *final_path, const ct_uvh5_header *h,
                               char *tmp, size_t tmp_size, ct_uvh5_file **out, ct_err *err);
ct_code ct_uvh5_pcommit(MPI_Comm comm, ct_uvh5_file *f, ct_code rc, const char *tmp,
                        const char *final_path, ct_err *err);

#endif
