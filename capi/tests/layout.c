/* The C compiler's view of include/ingot.h, printed in the format of capi/abi/layout-64bit.txt;
 * capi/scripts/test-c.sh diffs the two, so Rust and C agree on every size, offset and code. */
#include <stddef.h>
#include <stdio.h>

#include "ingot.h"

#define STRUCT(T) printf("%s size %zu align %zu\n", #T, sizeof(T), _Alignof(T))
#define FIELD(T, f) printf("%s.%s %zu\n", #T, #f, offsetof(T, f))
#define CODE(c) printf("%s %d\n", #c, (int)(c))

int main(void) {
    STRUCT(ingot_model_info);
    FIELD(ingot_model_info, file_bytes);
    FIELD(ingot_model_info, weight_bytes);
    FIELD(ingot_model_info, n_vocab);
    FIELD(ingot_model_info, n_ctx_train);
    FIELD(ingot_model_info, n_embd);
    FIELD(ingot_model_info, n_layer);
    FIELD(ingot_model_info, n_head);
    FIELD(ingot_model_info, n_head_kv);
    FIELD(ingot_model_info, head_dim);
    FIELD(ingot_model_info, n_ff);
    FIELD(ingot_model_info, bos);
    FIELD(ingot_model_info, eos);
    FIELD(ingot_model_info, has_chat_template);
    STRUCT(ingot_session_params);
    FIELD(ingot_session_params, n_ctx);
    FIELD(ingot_session_params, n_batch);
    FIELD(ingot_session_params, n_threads);
    FIELD(ingot_session_params, device);
    STRUCT(ingot_sampler_params);
    FIELD(ingot_sampler_params, seed);
    FIELD(ingot_sampler_params, temperature);
    FIELD(ingot_sampler_params, top_k);
    FIELD(ingot_sampler_params, top_p);
    FIELD(ingot_sampler_params, min_p);
    FIELD(ingot_sampler_params, repeat_penalty);
    FIELD(ingot_sampler_params, frequency_penalty);
    FIELD(ingot_sampler_params, presence_penalty);
    FIELD(ingot_sampler_params, penalty_last_n);
    STRUCT(ingot_chat_message);
    FIELD(ingot_chat_message, role);
    FIELD(ingot_chat_message, content);
    CODE(INGOT_OK);
    CODE(INGOT_ERR_NULL);
    CODE(INGOT_ERR_INVALID);
    CODE(INGOT_ERR_BUFFER_TOO_SMALL);
    CODE(INGOT_ERR_IO);
    CODE(INGOT_ERR_MODEL);
    CODE(INGOT_ERR_CONTEXT_FULL);
    CODE(INGOT_ERR_TEMPLATE);
    CODE(INGOT_ERR_STATE);
    CODE(INGOT_ERR_INTERNAL);
    CODE(INGOT_ABI_VERSION);
    CODE(INGOT_DEVICE_CPU);
    CODE(INGOT_DEVICE_CUDA);
    return 0;
}
