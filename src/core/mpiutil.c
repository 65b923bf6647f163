/* mpiutil.c -- see mpiutil.h. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "mpiutil.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
        int code, category;
        char msg[CT_ERRMSG_MAX];
    } buf;
    memset(&buf, 0, sizeof buf);
    if (rank == first) {
        buf.code = (int)rc;
        buf.category = err ? (int)err->category : (int)ct_code_category(rc);
        if (err)
            snprintf(buf.msg, sizeof buf.msg, "%s", err->msg);
    }
    MPI_Bcast(&buf, (int)sizeof buf, MPI_BYTE, first, comm);
    if (err) {
        err->code = (ct_code)buf.code;
        err->category = (ct_category)buf.category;
        snprintf(err->msg, sizeof err->msg, "%s", buf.msg);
    }
    return (ct_code)buf.code;
}

int ct_mpi_cpu_share(MPI_Comm sharing)
{
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(sharing, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    long mask = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : online;
    long per = online / (local > 0 ? local : 1);
    per = mask < per ? mask : per;
    return per >= 1 ? (int)per : 1;
}

/* munge's default socket (its --socket; Debian's and upstream's build). */
#define CT_MUNGE_SOCKET "/run/munge/munge.socket.2"

void ct_mpi_prepare_env(void)
{
    /* No shared file pointers are used; the lockedfile component overflows a fixed buffer
     * on a path past about 240 bytes (measured with Open MPI 4.1: a 234-byte output and its
     * temporary name abort the job with "buffer overflow detected"). An operator's own
     * choice stands. */
    setenv("OMPI_MCA_sharedfp", "^lockedfile", 0);
    if (getenv("PMIX_MCA_psec"))
        return;
    int answered = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        memcpy(a.sun_path, CT_MUNGE_SOCKET, sizeof CT_MUNGE_SOCKET);
        answered = connect(fd, (const struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
    }
    if (!answered)
        setenv("PMIX_MCA_psec", "^munge", 0);
}
