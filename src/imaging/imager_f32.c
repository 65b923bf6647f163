/* imager_f32.c -- the imager with single-precision grids (see imager_body.c). */
#define CT_IMAGER_SINGLE 1
#include "imager_body.c"
