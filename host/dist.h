/* host/dist.h — the processes of a run (DESIGN.md §6): which one this is, how many there
 * are, which device it takes, and how they found each other.
 *
 * One process per GPU (or, on the CPU backend, per share of the batch). dist_init
 * decides, in this order:
 *   - MPI: when this dath was built with MPI and one of the MPI launchers' variables is
 *     set (OMPI_COMM_WORLD_SIZE from Open MPI's mpirun, PMIX_RANK from PMIx launchers —
 *     mpirun, `srun --mpi=pmix` —, PMI_RANK/PMI_SIZE from PMI-2 ones): MPI_Init_thread
 *     (MPI_THREAD_FUNNELED: only the training loop's thread calls MPI), rank and world
 *     from MPI_COMM_WORLD, the local rank from a shared-memory split of it
 *     (MPI_Comm_split_type, MPI_COMM_TYPE_SHARED), so a node's processes take devices
 *     0, 1, …;
 *   - the environment: DATH_WORLD set: DATH_RANK, DATH_LOCAL_RANK and, when DATH_WORLD
 *     is more than 1, DATH_RENDEZVOUS (a path on a file system every process sees:
 *     host/rendezvous.h) are required;
 *   - otherwise one process (world 1).
 * A Slurm step of several tasks that reaches none of these (srun without --mpi=pmix,
 * or a dath built without MPI under mpirun) is an error, not N runs that each think
 * they are alone.
 *
 * Functions returning int give 0, or -1 with a message that names this rank. */
#ifndef DATH_DIST_H
#define DATH_DIST_H

#include <stddef.h>

typedef enum { DIST_NONE, DIST_MPI, DIST_ENV } dist_kind;

typedef struct dath_dist {
    dist_kind kind;
    int rank, world;              /* this process, of world */
    int local_rank, local_world;  /* on this node (env: DATH_LOCAL_RANK; local_world 0: not known) */
    double timeout_s;             /* bound of the bootstrap's waits (--comm-timeout) */
    char host[64];
    char rendezvous[4096];        /* env: DATH_RENDEZVOUS */
    int mpi_inited;
} dath_dist;

/* 1 when this dath was built with MPI. */
int dist_have_mpi(void);

/* Fills d as above (MPI_Init when launched by MPI). On error d is a world of 1 and,
 * when MPI was initialised, dist_abort must still be called. */
int dist_init(dath_dist *d, double timeout_s, char *err, size_t err_len);

/* "mpi", "env" or "none". */
const char *dist_kind_name(dist_kind k);

/* Rank 0's blob[len] (≤ 1024 bytes) to every rank: MPI_Ibcast, or the rendezvous file;
 * bounded by timeout_s. */
int dist_share(dath_dist *d, void *blob, size_t len, char *err, size_t err_len);

/* The end of a run that went well: MPI_Finalize (nothing without MPI). */
void dist_finalize(dath_dist *d);

/* The end of a run that failed on this rank: MPI_Abort (the launcher then stops the
 * others), or exit without MPI. Does not return. */
void dist_abort(dath_dist *d, int status);

#endif
