/* clang_complex.h -- glibc's <complex.h> defines CMPLX and CMPLXF for GCC only; clang has
 * the builtin they stand for. Included first in every file of the fuzz preset (clang). */
#if defined(__clang__) && !defined(CMPLX)
#define CMPLX(x, y)  __builtin_complex((double)(x), (double)(y))
#define CMPLXF(x, y) __builtin_complex((float)(x), (float)(y))
#endif
