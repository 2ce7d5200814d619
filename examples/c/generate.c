/*
 * generate.c: continue a prompt with ingot's C ABI, the way `ingot generate` does (same flags, same
 * defaults, same output for the same seed).
 *
 *   generate -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
 *            [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--ctx N] [--threads N]
 *            [--arena] [--from-memory]
 *
 * --arena runs the session in a caller-owned buffer of exactly ingot_session_arena_size() bytes;
 * --from-memory reads the file into memory and loads it with ingot_model_load_memory (zero-copy).
 * Only the generated text goes to stdout.
 *
 * Build: cc -std=c11 -Icapi/include examples/c/generate.c target/release/libingot.a -lpthread -ldl -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingot.h"

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "generate: %s failed (%d): %s\n", what, status, ingot_last_error());
    return 1;
}

/* Streams each piece to stdout; returning 0 keeps generating. */
static int32_t on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* Reads a whole file into a malloc'd buffer (for --from-memory). */
static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                *size = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    unsigned long n_predict = 128;
    int use_arena = 0, from_memory = 0;
    ingot_session_params sp = ingot_session_params_default();
    ingot_sampler_params pp = ingot_sampler_params_default();

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name) (strcmp(a, name) == 0 && v && ++i)
        if (FLAG("-m")) model_path = v;
        else if (FLAG("-p")) prompt = v;
        else if (FLAG("-n")) n_predict = strtoul(v, NULL, 10);
        else if (FLAG("--temp")) pp.temperature = strtof(v, NULL);
        else if (FLAG("--top-k")) pp.top_k = (int32_t)strtol(v, NULL, 10);
        else if (FLAG("--top-p")) pp.top_p = strtof(v, NULL);
        else if (FLAG("--min-p")) pp.min_p = strtof(v, NULL);
        else if (FLAG("--repeat-penalty")) pp.repeat_penalty = strtof(v, NULL);
        else if (FLAG("--repeat-last-n")) pp.penalty_last_n = (int32_t)strtol(v, NULL, 10);
        else if (FLAG("--seed")) pp.seed = strtoull(v, NULL, 10);
        else if (FLAG("--ctx")) sp.n_ctx = (uint32_t)strtoul(v, NULL, 10);
        else if (FLAG("--threads")) sp.n_threads = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--arena") == 0) use_arena = 1;
        else if (strcmp(a, "--from-memory") == 0) from_memory = 1;
        else {
            fprintf(stderr, "generate: unknown or incomplete option `%s`\n", a);
            return 2;
        }
#undef FLAG
    }
    if (!model_path || !prompt) {
        fprintf(stderr, "usage: generate -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [--ctx N] "
                        "[--threads N] [--arena] [--from-memory]\n");
        return 2;
    }
    if (ingot_abi_version() != INGOT_ABI_VERSION) {
        fprintf(stderr, "generate: libingot ABI %u does not match the header's %u\n",
                ingot_abi_version(), INGOT_ABI_VERSION);
        return 1;
    }

    int rc = 1;
    int32_t st;
    void *image = NULL, *arena = NULL;
    ingot_model *model = NULL;
    ingot_session *session = NULL;
    ingot_sampler *sampler = NULL;

    if (from_memory) {
        size_t size = 0;
        image = read_file(model_path, &size);
        if (!image) {
            fprintf(stderr, "generate: cannot read `%s`\n", model_path);
            return 1;
        }
        st = ingot_model_load_memory(image, size, &model);
    } else {
        st = ingot_model_load_file(model_path, &model);
    }
    if (st != INGOT_OK) { rc = fail("loading the model", st); goto done; }

    if (use_arena) {
        size_t need = 0;
        if ((st = ingot_session_arena_size(model, &sp, &need)) != INGOT_OK) {
            rc = fail("ingot_session_arena_size", st);
            goto done;
        }
        arena = malloc(need); /* malloc's alignment is enough (4 bytes are required) */
        if (!arena) { fprintf(stderr, "generate: out of memory\n"); goto done; }
        st = ingot_session_new_in_arena(model, &sp, arena, need, &session);
    } else {
        st = ingot_session_new(model, &sp, &session);
    }
    if (st != INGOT_OK) { rc = fail("creating the session", st); goto done; }
    if ((st = ingot_sampler_new(model, &pp, &sampler)) != INGOT_OK) {
        rc = fail("ingot_sampler_new", st);
        goto done;
    }

    size_t n_generated = 0;
    st = ingot_generate(session, sampler, prompt, strlen(prompt), (uint32_t)n_predict, on_piece, NULL,
                        &n_generated);
    if (st != INGOT_OK) { rc = fail("ingot_generate", st); goto done; }
    fputc('\n', stdout);
    rc = 0;

done:
    /* Sessions before their model and arena; every free accepts NULL. */
    ingot_sampler_free(sampler);
    ingot_session_free(session);
    free(arena);
    ingot_model_free(model);
    free(image);
    return rc;
}
