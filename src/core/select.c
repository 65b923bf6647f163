/* select.c -- see select.h. */
#include "select.h"

#include <stdint.h>

/* One body for both types: the logic once. */
#define CT_SELECT_BODY(T)                                                                          \
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;                                    \
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;                                          \
    while (lo < hi) {                                                                              \
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;                           \
        const T pivot = a[lo + (ptrdiff_t)((state >> 33) % (uint64_t)(hi - lo + 1))];              \
        ptrdiff_t i = lo, j = hi;                                                                  \
        /* The pivot's own copy stops both scans in the first pass, so both                        \
         * sides shrink; afterwards a[lo..j] <= pivot <= a[i..hi] and                              \
         * a[j+1..i-1] == pivot. */                                                                \
        while (i <= j) {                                                                           \
            while (a[i] < pivot)                                                                   \
                i++;                                                                               \
            while (a[j] > pivot)                                                                   \
                j--;                                                                               \
            if (i <= j) {                                                                          \
                const T tmp = a[i];                                                                \
                a[i++] = a[j];                                                                     \
                a[j--] = tmp;                                                                      \
            }                                                                                      \
        }                                                                                          \
        if (kk <= j)                                                                               \
            hi = j;                                                                                \
        else if (kk >= i)                                                                          \
            lo = i;                                                                                \
        else                                                                                       \
            return a[k];                                                                           \
    }                                                                                              \
    return a[k];

double ct_select_kth(double *a, size_t n, size_t k)
{
    CT_SELECT_BODY(double)
}

float ct_select_kthf(float *a, size_t n, size_t k)
{
    CT_SELECT_BODY(float)
}
