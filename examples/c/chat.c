/*
 * chat.c: a multi-turn chat with ingot's C ABI, one user turn per line of stdin, the way `ingot chat`
 * runs with stdin as a pipe (same flags, same defaults, same replies for the same seed). Each turn
 * renders the whole conversation with the model's chat template and evaluates only the tokens after
 * the prefix already in the KV cache. Unlike `ingot chat` it does not drop old turns when the context
 * fills up: it stops with a message.
 *
 *   chat -m MODEL [--system TEXT] [--temp T] [--seed S] [--ctx N] [--max-reply N] [--threads N]
 *
 * Build: cc -std=c11 -Icapi/include examples/c/chat.c target/release/libingot.a -lpthread -ldl -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingot.h"

/* A growable array: the conversation, token lists, text. */
#define GROW(ptr, cap, need)                                                       \
    do {                                                                           \
        if ((need) > (cap)) {                                                      \
            size_t c_ = (cap) ? (cap) : 16;                                        \
            while (c_ < (need)) c_ *= 2;                                           \
            void *p_ = realloc((ptr), c_ * sizeof(*(ptr)));                        \
            if (!p_) { fprintf(stderr, "chat: out of memory\n"); exit(1); }        \
            (ptr) = p_;                                                            \
            (cap) = c_;                                                            \
        }                                                                          \
    } while (0)

static char *dup_str(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) { fprintf(stderr, "chat: out of memory\n"); exit(1); }
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "chat: %s failed (%d): %s\n", what, status, ingot_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL;
    size_t max_reply = 512;
    ingot_session_params sp = ingot_session_params_default();
    ingot_sampler_params pp = ingot_sampler_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name) (strcmp(a, name) == 0 && v && ++i)
        if (FLAG("-m")) model_path = v;
        else if (FLAG("--system")) system = v;
        else if (FLAG("--temp")) pp.temperature = strtof(v, NULL);
        else if (FLAG("--seed")) pp.seed = strtoull(v, NULL, 10);
        else if (FLAG("--ctx")) sp.n_ctx = (uint32_t)strtoul(v, NULL, 10);
        else if (FLAG("--max-reply")) max_reply = strtoul(v, NULL, 10);
        else if (FLAG("--threads")) sp.n_threads = (uint32_t)strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "chat: unknown or incomplete option `%s`\n", a);
            return 2;
        }
#undef FLAG
    }
    if (!model_path) {
        fprintf(stderr, "usage: chat -m MODEL [--system TEXT] [--temp T] [--seed S] [--ctx N]\n");
        return 2;
    }
    if (max_reply == 0 || max_reply >= sp.n_ctx) {
        fprintf(stderr, "chat: --max-reply must be between 1 and --ctx - 1\n");
        return 2;
    }

    int rc = 1;
    int32_t st;
    ingot_model *model = NULL;
    ingot_session *session = NULL;
    ingot_sampler *sampler = NULL;
    ingot_chat_message *msgs = NULL; /* roles are static strings; contents are malloc'd */
    size_t n_msgs = 0, cap_msgs = 0;
    int32_t *prompt = NULL, *cached = NULL;
    size_t cap_prompt = 0, cap_cached = 0, n_cached = 0;
    char *text = NULL, *line = NULL, *reply = NULL;
    size_t cap_text = 0, cap_line = 0, cap_reply = 0;

    if ((st = ingot_model_load_file(model_path, &model)) != INGOT_OK) {
        rc = fail("ingot_model_load_file", st);
        goto done;
    }
    if ((st = ingot_session_new(model, &sp, &session)) != INGOT_OK) {
        rc = fail("ingot_session_new", st);
        goto done;
    }
    if ((st = ingot_sampler_new(model, &pp, &sampler)) != INGOT_OK) {
        rc = fail("ingot_sampler_new", st);
        goto done;
    }
    if (system) {
        GROW(msgs, cap_msgs, n_msgs + 1);
        msgs[n_msgs++] = (ingot_chat_message){"system", dup_str(system, strlen(system))};
    }

    for (;;) {
        /* One user turn per line (without its newline); blank lines are skipped. */
        size_t n_line = 0;
        int c;
        while ((c = getchar()) != EOF && c != '\n') {
            GROW(line, cap_line, n_line + 2);
            line[n_line++] = (char)c;
        }
        if (c == EOF && n_line == 0) break;
        while (n_line > 0 && (line[n_line - 1] == ' ' || line[n_line - 1] == '\r' ||
                              line[n_line - 1] == '\t'))
            n_line--;
        size_t start = 0;
        while (start < n_line && (line[start] == ' ' || line[start] == '\t')) start++;
        if (start == n_line) continue;
        GROW(msgs, cap_msgs, n_msgs + 1);
        msgs[n_msgs++] = (ingot_chat_message){"user", dup_str(line + start, n_line - start)};

        /* Render the conversation (size query, then the text). */
        size_t n_text = 0;
        st = ingot_chat_apply_template(model, msgs, n_msgs, true, text, cap_text, &n_text);
        if (st == INGOT_ERR_BUFFER_TOO_SMALL) {
            GROW(text, cap_text, n_text + 1);
            st = ingot_chat_apply_template(model, msgs, n_msgs, true, text, cap_text, &n_text);
        }
        if (st != INGOT_OK) { rc = fail("ingot_chat_apply_template", st); goto done; }

        size_t n_prompt = 0;
        st = ingot_tokenize(model, text, n_text, true, true, prompt, cap_prompt, &n_prompt);
        if (st == INGOT_ERR_BUFFER_TOO_SMALL) {
            GROW(prompt, cap_prompt, n_prompt);
            st = ingot_tokenize(model, text, n_text, true, true, prompt, cap_prompt, &n_prompt);
        }
        if (st != INGOT_OK) { rc = fail("ingot_tokenize", st); goto done; }
        if (n_prompt + max_reply > sp.n_ctx) {
            fprintf(stderr, "chat: the conversation no longer fits the context of %u tokens\n",
                    sp.n_ctx);
            break;
        }

        /* Reuse the cached prefix; re-evaluate at least the last prompt token for fresh logits. */
        size_t keep = 0;
        while (keep < n_cached && keep < n_prompt && cached[keep] == prompt[keep]) keep++;
        if (keep > n_prompt - 1) keep = n_prompt - 1;
        if ((st = ingot_session_truncate(session, keep)) != INGOT_OK) {
            rc = fail("ingot_session_truncate", st);
            goto done;
        }
        if ((st = ingot_prefill(session, prompt + keep, n_prompt - keep)) != INGOT_OK) {
            rc = fail("ingot_prefill", st);
            goto done;
        }
        GROW(cached, cap_cached, n_prompt + max_reply);
        memcpy(cached + keep, prompt + keep, (n_prompt - keep) * sizeof(int32_t));
        n_cached = n_prompt;
        for (size_t i = 0; i < n_prompt; i++) ingot_sampler_accept(sampler, prompt[i]);

        /* Generate the reply, streaming raw piece bytes; keep its text for the history. */
        size_t n_reply = 0, pos = n_prompt, n_reply_tokens = 0;
        while (n_reply_tokens < max_reply) {
            int32_t tok;
            if ((st = ingot_sample(sampler, session, &tok)) != INGOT_OK) {
                rc = fail("ingot_sample", st);
                goto done;
            }
            bool eog = false;
            if ((st = ingot_token_is_eog(model, tok, &eog)) != INGOT_OK) {
                rc = fail("ingot_token_is_eog", st);
                goto done;
            }
            if (eog) break;
            char piece[256];
            size_t n_piece = 0;
            if ((st = ingot_token_to_piece(model, tok, false, piece, sizeof piece, &n_piece)) !=
                INGOT_OK) {
                rc = fail("ingot_token_to_piece", st);
                goto done;
            }
            n_reply_tokens++;
            fwrite(piece, 1, n_piece, stdout);
            fflush(stdout);
            GROW(reply, cap_reply, n_reply + n_piece + 1);
            memcpy(reply + n_reply, piece, n_piece);
            n_reply += n_piece;
            if (pos == sp.n_ctx) {
                fprintf(stderr, "(context full: reply cut short)\n");
                break;
            }
            if ((st = ingot_decode_step(session, tok)) != INGOT_OK) {
                rc = fail("ingot_decode_step", st);
                goto done;
            }
            cached[n_cached++] = tok;
            pos++;
        }
        fputc('\n', stdout);
        fflush(stdout);
        GROW(msgs, cap_msgs, n_msgs + 1);
        msgs[n_msgs++] = (ingot_chat_message){"assistant", dup_str(reply ? reply : "", n_reply)};
    }
    rc = 0;

done:
    for (size_t i = 0; i < n_msgs; i++) free((void *)msgs[i].content);
    free(msgs);
    free(prompt);
    free(cached);
    free(text);
    free(line);
    free(reply);
    ingot_sampler_free(sampler);
    ingot_session_free(session);
    ingot_model_free(model);
    return rc;
}
