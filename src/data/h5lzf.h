/*
 * h5lzf.h -- reading HDF5 datasets that h5py compressed with LZF.
 *
 * pyuvdata, the reference UVH5 writer, stores flags and nsamples with h5py's
 * LZF filter (HDF5 filter id 32000) by default. libhdf5 does not ship that
 * filter, so without this module a C reader cannot read what pyuvdata
 * writes. This registers a decode-only implementation of the filter (LZF's
 * format: literal runs and back-references; written here from the format,
 * bounds-checked so a damaged chunk is an error, never an overrun).
 */
#ifndef CONTIMG_H5LZF_H
#define CONTIMG_H5LZF_H

#include <stddef.h>

#define CT_H5Z_FILTER_LZF 32000

/* Registers the filter with libhdf5 (process-wide, idempotent). Returns 0,
 * or -1 when HDF5 refused the registration. */
int ct_h5lzf_register(void);

/* Decodes one LZF stream into out (capacity out_size). Returns the decoded
 * length, 0 for malformed input, or (size_t)-1 when out is too small. */
size_t ct_lzf_decode(const unsigned char *in, size_t in_len, unsigned char *out, size_t out_size);

#endif
