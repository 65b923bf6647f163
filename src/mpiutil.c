/* mpiutil.c -- see mpiutil.h. */
#include "mpiutil.h"

#include <stdio.h>
#include <string.h>

ct_code ct_mpi_agree(MPI_Comm comm, ct_code rc, ct_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = rc != CT_OK ? rank : size, first = size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size)
        return CT_OK;
    struct {
        int code;
        char msg[CT_ERRMSG_MAX];
    } buf;
    memset(&buf, 0, sizeof buf);
    if (rank == first) {
        buf.code = (int)rc;
        if (err)
            snprintf(buf.msg, sizeof buf.msg, "%s", err->msg);
    }
    MPI_Bcast(&buf, (int)sizeof buf, MPI_BYTE, first, comm);
    if (err) {
        err->code = (ct_code)buf.code;
        snprintf(err->msg, sizeof err->msg, "%s", buf.msg);
    }
    return (ct_code)buf.code;
}
