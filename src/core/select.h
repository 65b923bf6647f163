/*
 * select.h -- the k-th smallest of an array (quickselect), for the medians and
 * median absolute deviations the image QA, the mosaic weights and the
 * calibration solver's outlier cut take. Owns nothing; reorders the caller's
 * array.
 */
#ifndef CONTIMG_SELECT_H
#define CONTIMG_SELECT_H

#include <stddef.h>

/* The k-th smallest of a[0..n-1] (0-based, k < n), reordering a so that
 * a[0..k-1] <= a[k] <= a[k+1..n-1]. NaN-free input. Expected O(n): Hoare's
 * partition, which splits runs of equal values evenly (a blank or zero
 * residual is all one value), about a pivot drawn by a small generator local to
 * the call, so that no layout (sorted rows, a ramp) makes it quadratic. */
double ct_select_kth(double *a, size_t n, size_t k);
float ct_select_kthf(float *a, size_t n, size_t k);

#endif
