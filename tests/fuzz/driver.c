/*
 * driver.c -- runs a fuzz target without libFuzzer: every file of the corpus directories,
 * then N inputs mutated from them (bit flips, byte sets to interesting values, inserts,
 * deletions, truncations, splices of two inputs), from a fixed seed so a failure is
 * reproduced by running the same command again. The suite runs each target this way
 * (built with gcc, and under the ASan preset); long runs use libFuzzer (the fuzz preset).
 *
 *   fuzz_TARGET [-n N] [-s SEED] [-o CRASH_FILE] CORPUS_DIR...
 *
 * Before each mutated input runs it is written to CRASH_FILE (default ./fuzz-input.bin),
 * so the one that brought the process down is kept for libFuzzer to replay.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct input {
    uint8_t *data;
    size_t size;
} input;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) /* xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static int load_dir(const char *dir, input **in, size_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "fuzz: cannot open corpus %s\n", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        if (f == NULL || buf == NULL ||
            fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            free(buf);
            if (f)
                fclose(f);
            continue;
        }
        fclose(f);
        input *grown = realloc(*in, (*n + 1) * sizeof **in);
        if (grown == NULL) {
            free(buf);
            break;
        }
        *in = grown;
        (*in)[(*n)++] = (input){buf, (size_t)st.st_size};
    }
    closedir(d);
    return 0;
}

/* One mutation of a (copied into out, at most cap bytes); b is a second input to splice. */
static size_t mutate(const input *a, const input *b, uint8_t *out, size_t cap)
{
    size_t n = a->size < cap ? a->size : cap;
    memcpy(out, a->data, n);
    static const uint8_t interesting[] = {0,   1,   0x7f, 0x80, 0xff, '"', '{', '}',  '[', ']',
                                          ',', ':', '\\', '.',  '/',  '-', '*', 0xc3, 0xe6};
    const int rounds = 1 + (int)(next() % 4);
    for (int r = 0; r < rounds; r++) {
        const size_t at = n ? next() % n : 0;
        switch (next() % 6) {
        case 0:
            if (n)
                out[at] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1:
            if (n)
                out[at] = interesting[next() % sizeof interesting];
            break;
        case 2: /* insert a byte */
            if (n < cap) {
                memmove(out + at + 1, out + at, n - at);
                out[at] = (uint8_t)next();
                n++;
            }
            break;
        case 3: { /* delete a run */
            const size_t len = n > at ? 1 + next() % (n - at) % 16 : 0;
            memmove(out + at, out + at + len, n - at - len);
            n -= len;
            break;
        }
        case 4: /* truncate */ n = at; break;
        default: { /* splice: the tail of b from a random point */
            const size_t from = b->size ? next() % b->size : 0;
            const size_t len = b->size - from < cap - at ? b->size - from : cap - at;
            memcpy(out + at, b->data + from, len);
            n = at + len;
            break;
        }
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    long iterations = 1000;
    const char *crash = "fuzz-input.bin";
    input *in = NULL;
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iterations = atol(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            rng = strtoull(argv[++i], NULL, 0) | 1;
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            crash = argv[++i];
        else if (load_dir(argv[i], &in, &n) != 0)
            return 2;
    }
    if (n == 0) {
        fprintf(stderr, "usage: %s [-n N] [-s SEED] [-o CRASH_FILE] CORPUS_DIR...\n", argv[0]);
        return 2;
    }
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        LLVMFuzzerTestOneInput(in[i].data, in[i].size);
        cap = in[i].size > cap ? in[i].size : cap;
    }
    cap = cap * 2 + 64;
    uint8_t *buf = malloc(cap);
    for (long k = 0; buf && k < iterations; k++) {
        const size_t len = mutate(&in[next() % n], &in[next() % n], buf, cap);
        FILE *f = fopen(crash, "wb");
        if (f) {
            fwrite(buf, 1, len, f);
            fclose(f);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    remove(crash); /* got here: nothing to keep */
    printf("fuzz: %zu corpus inputs and %ld mutations, no crash\n", n, iterations);
    for (size_t i = 0; i < n; i++)
        free(in[i].data);
    free(in);
    free(buf);
    return 0;
}
