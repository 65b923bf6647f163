/* h5lzf.c -- see h5lzf.h. */
#include "h5lzf.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

size_t ct_lzf_decode(const unsigned char *in, size_t in_len, unsigned char *out, size_t out_size)
{
    const unsigned char *ip = in, *in_end = in + in_len;
    unsigned char *op = out, *out_end = out + out_size;
    while (ip < in_end) {
        unsigned ctrl = *ip++;
        if (ctrl < 32) {
            /* A literal run of ctrl + 1 bytes. */
            size_t len = ctrl + 1;
            if ((size_t)(in_end - ip) < len)
                return 0;
            if ((size_t)(out_end - op) < len)
                return (size_t)-1;
            memcpy(op, ip, len);
            op += len;
            ip += len;
        } else {
            /* A back-reference: length in the top 3 bits (7 = more in the
             * next byte), distance - 1 in the low 5 bits and the next byte. */
            size_t len = ctrl >> 5;
            if (len == 7) {
                if (ip >= in_end)
                    return 0;
                len += *ip++;
            }
            if (ip >= in_end)
                return 0;
            size_t dist = (((size_t)ctrl & 0x1f) << 8) + *ip++ + 1;
            len += 2;
            if (dist > (size_t)(op - out))
                return 0;
            if ((size_t)(out_end - op) < len)
                return (size_t)-1;
            /* Byte by byte: the source may overlap what is being written. */
            const unsigned char *ref = op - dist;
            for (size_t i = 0; i < len; i++)
                *op++ = *ref++;
        }
    }
    return (size_t)(op - out);
}

/* The HDF5 filter callback: decode only. h5py stores the chunk's byte size
 * as the third client value; without it, grow the buffer until it fits. */
static size_t lzf_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                         size_t nbytes, size_t *buf_size, void **buf)
{
    if (!(flags & H5Z_FLAG_REVERSE))
        return 0; /* contimg never writes LZF */
    size_t size = cd_nelmts >= 3 && cd_values[2] != 0 ? cd_values[2] : 2 * *buf_size + 64;
    for (int tries = 0; tries < 24; tries++) {
        unsigned char *out = malloc(size);
        if (out == NULL)
            return 0;
        size_t n = ct_lzf_decode(*buf, nbytes, out, size);
        if (n != (size_t)-1 && n != 0) {
            free(*buf);
            *buf = out;
            *buf_size = size;
            return n;
        }
        free(out);
        if (n == 0)
            return 0; /* malformed: HDF5 reports the read as failed */
        size *= 2;
    }
    return 0;
}

int ct_h5lzf_register(void)
{
    if (H5Zfilter_avail(CT_H5Z_FILTER_LZF) > 0)
        return 0;
    static const H5Z_class2_t cls = {
        .version = H5Z_CLASS_T_VERS,
        .id = CT_H5Z_FILTER_LZF,
        .encoder_present = 0,
        .decoder_present = 1,
        .name = "lzf (decode only, contimg)",
        .can_apply = NULL,
        .set_local = NULL,
        .filter = lzf_filter,
    };
    return H5Zregister(&cls) < 0 ? -1 : 0;
}
