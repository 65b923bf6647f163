/* imager_f64.c -- the imager with double-precision grids (see imager_body.c). */
#define CT_IMAGER_SINGLE 0
#include "imager_body.c"
