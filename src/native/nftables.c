/*
 * pbx-guardian: a minimal N-API binding of libnftables (plain C, node_api.h only).
 *
 *   createContext(terse?) -> ctx  nft_ctx_new(NFT_CTX_DEFAULT), JSON output, buffered output/error;
 *                                 terse: NFT_CTX_OUTPUT_TERSE too (listings leave set elements out)
 *   run(ctx, script) -> Promise<{rc, output, error}>
 *                                 nft_run_cmd_from_buffer() on the libuv thread pool; runs on one
 *                                 context are serialised by a mutex (libnftables contexts are not
 *                                 thread-safe)
 *   freeContext(ctx)              frees the context (also done by the GC finalizer)
 *   hasElements(table, probes)    single-element lookups over netlink (setelem-get.c)
 *   applyElements(table, ops)     address-set elements added/deleted in one nfnetlink batch,
 *   listElements(table, set, ...) and listed as fixed-size records (setelem-batch.c)
 *
 * The script is passed as a buffer: nothing here interprets it; the JS side builds it from
 * validated addresses only.
 */
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <uv.h>
#include <nftables/libnftables.h>

typedef struct {
  struct nft_ctx *nft;
  uv_mutex_t lock;
  int busy;   /* runs queued or in flight (freeContext waits for none; the JS wrapper serialises) */
  int freed;
} pbxg_ctx;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ctx_ref;
  pbxg_ctx *ctx;
  char *script;
  int rc;
  char *output;
  char *error;
} pbxg_run;

#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), NULL, "nftables addon: N-API call failed: " #call); \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void ctx_release(pbxg_ctx *c) {
  if (c->nft) {
    nft_ctx_free(c->nft);
    c->nft = NULL;
  }
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pbxg_ctx *c = (pbxg_ctx *)data;
  ctx_release(c);
  uv_mutex_destroy(&c->lock);
  free(c);
}

napi_value pbxg_has_elements(napi_env env, napi_callback_info info);
napi_value pbxg_apply_elements(napi_env env, napi_callback_info info);
napi_value pbxg_list_elements(napi_env env, napi_callback_info info);

static napi_value create_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool terse = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1) napi_get_value_bool(env, argv[0], &terse);
  pbxg_ctx *c = calloc(1, sizeof(*c));
  if (!c) {
    napi_throw_error(env, NULL, "nftables addon: out of memory");
    return NULL;
  }
  c->nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!c->nft) {
    free(c);
    napi_throw_error(env, NULL, "nftables addon: nft_ctx_new failed");
    return NULL;
  }
  nft_ctx_output_set_flags(c->nft, NFT_CTX_OUTPUT_JSON | (terse ? NFT_CTX_OUTPUT_TERSE : 0));
  if (nft_ctx_buffer_output(c->nft) != 0 || nft_ctx_buffer_error(c->nft) != 0) {
    nft_ctx_free(c->nft);
    free(c);
    napi_throw_error(env, NULL, "nftables addon: cannot buffer libnftables output");
    return NULL;
  }
  if (uv_mutex_init(&c->lock) != 0) {
    nft_ctx_free(c->nft);
    free(c);
    napi_throw_error(env, NULL, "nftables addon: mutex init failed");
    return NULL;
  }
  napi_value obj;
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_wrap(env, obj, c, ctx_finalize, NULL, NULL));
  return obj;
}

static char *dup_or_empty(const char *s) {
  const char *src = s ? s : "";
  size_t n = strlen(src);
  char *d = malloc(n + 1);
  if (d) memcpy(d, src, n + 1);
  return d;
}

/* libuv thread pool: no N-API calls here */
static void run_execute(napi_env env, void *data) {
  (void)env;
  pbxg_run *r = (pbxg_run *)data;
  uv_mutex_lock(&r->ctx->lock);
  if (!r->ctx->nft) {
    r->rc = -1;
    r->output = dup_or_empty("");
    r->error = dup_or_empty("nftables addon: context freed");
  } else {
    r->rc = nft_run_cmd_from_buffer(r->ctx->nft, r->script);
    /* the get_* calls return the buffered text and reset the buffers for the next run */
    r->output = dup_or_empty(nft_ctx_get_output_buffer(r->ctx->nft));
    r->error = dup_or_empty(nft_ctx_get_error_buffer(r->ctx->nft));
  }
  uv_mutex_unlock(&r->ctx->lock);
}

static void run_complete(napi_env env, napi_status status, void *data) {
  pbxg_run *r = (pbxg_run *)data;
  napi_value result, v;
  r->ctx->busy--;
  if (status != napi_ok || !r->output || !r->error) {
    napi_value msg, err;
    napi_create_string_utf8(env, status != napi_ok ? "nftables addon: run cancelled" : "nftables addon: out of memory",
                            NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, r->deferred, err);
  } else {
    napi_create_object(env, &result);
    napi_create_int32(env, r->rc, &v);
    napi_set_named_property(env, result, "rc", v);
    napi_create_string_utf8(env, r->output, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, result, "output", v);
    napi_create_string_utf8(env, r->error, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, result, "error", v);
    napi_resolve_deferred(env, r->deferred, result);
  }
  napi_delete_reference(env, r->ctx_ref);
  napi_delete_async_work(env, r->work);
  free(r->script);
  free(r->output);
  free(r->error);
  free(r);
}

static pbxg_ctx *unwrap_ctx(napi_env env, napi_value obj) {
  void *p = NULL;
  if (napi_unwrap(env, obj, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "nftables addon: expected a context from createContext()");
    return NULL;
  }
  return (pbxg_ctx *)p;
}

static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "nftables addon: run(ctx, script)");
    return NULL;
  }
  pbxg_ctx *c = unwrap_ctx(env, argv[0]);
  if (!c) return NULL;
  if (c->freed) {
    napi_throw_error(env, NULL, "nftables addon: context freed");
    return NULL;
  }
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[1], &t));
  if (t != napi_string) {
    napi_throw_type_error(env, NULL, "nftables addon: script must be a string");
    return NULL;
  }
  size_t len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[1], NULL, 0, &len));
  pbxg_run *r = calloc(1, sizeof(*r));
  if (!r || !(r->script = malloc(len + 1))) {
    free(r);
    napi_throw_error(env, NULL, "nftables addon: out of memory");
    return NULL;
  }
  CHECK(env, napi_get_value_string_utf8(env, argv[1], r->script, len + 1, &len));
  if (strlen(r->script) != len) { /* embedded NUL: refuse rather than run a truncated script */
    free(r->script);
    free(r);
    napi_throw_type_error(env, NULL, "nftables addon: script contains a NUL byte");
    return NULL;
  }
  r->ctx = c;
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, &r->deferred, &promise));
  CHECK(env, napi_create_reference(env, argv[0], 1, &r->ctx_ref)); /* keep ctx alive while queued */
  CHECK(env, napi_create_string_utf8(env, "pbxg_nft_run", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, run_execute, run_complete, r, &r->work));
  CHECK(env, napi_queue_async_work(env, r->work));
  c->busy++;
  return promise;
}

static napi_value free_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  pbxg_ctx *c = unwrap_ctx(env, argv[0]);
  if (!c) return NULL;
  c->freed = 1;
  uv_mutex_lock(&c->lock); /* waits for a run in flight on the pool */
  ctx_release(c);
  uv_mutex_unlock(&c->lock);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"createContext", NULL, create_context, NULL, NULL, NULL, napi_default, NULL},
      {"run", NULL, run, NULL, NULL, NULL, napi_default, NULL},
      {"freeContext", NULL, free_context, NULL, NULL, NULL, napi_default, NULL},
      {"hasElements", NULL, pbxg_has_elements, NULL, NULL, NULL, napi_default, NULL},
      {"applyElements", NULL, pbxg_apply_elements, NULL, NULL, NULL, napi_default, NULL},
      {"listElements", NULL, pbxg_list_elements, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
