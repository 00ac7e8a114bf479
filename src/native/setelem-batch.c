/*
 * pbx-guardian: the elements of the address sets (ban4/ban6) over raw nfnetlink, without
 * libnftables' text parser and JSON printer (measured at 1M elements: ~3 s to parse the script of
 * a restore, ~28 s and a 68 MB string to list a set).
 *
 *   applyElements(table, ops) -> Promise<void>
 *       ops: [{ del: boolean, set, keyLen: 4|16, keys: Buffer (n*keyLen), timeoutsMs? }]
 *       timeoutsMs: Float64Array or BigUint64Array of n values or of one (0 = no timeout).
 *       ONE nfnetlink batch (BATCH_BEGIN, NEWSETELEM/DELSETELEM messages, BATCH_END): the kernel
 *       commits all of it or nothing; a refused element rejects with Error{errno, op, set}.
 *   listElements(table, set, keyLen, maxElems) -> Promise<Buffer>
 *       NFT_MSG_GETSETELEM with NLM_F_DUMP, parsed here: one 32-byte record per element, key (16
 *       bytes, an IPv4 key in the first 4), timeout ms and remaining ms as little-endian doubles
 *       (0 = no timeout).
 *
 * Everything from JS is checked and copied on the main thread (TypeError on a bad argument); the
 * netlink work runs on the libuv thread pool without N-API calls. Buffers are bounded by
 * MAX_ELEMS / maxElems.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <node_api.h>
#include "nl-attr.h"

#define MAX_NAME 64
#define MAX_OPS 8
#define MAX_ELEMS (4u << 20)  /* per call, all ops together */
#define MAX_LIST (16u << 20)  /* records one listing may return */
#define PER_MSG 1024          /* elements per message: the elements nest's length is 16 bits */
#define ELEM_MAX 40           /* list elem + key nests, a 16-byte value, a timeout */
#define MSG_OVERHEAD (NLMSG_HDRLEN + 4 + 2 * NLA_ALIGN(NLA_HDRLEN + MAX_NAME) + NLA_HDRLEN)
#define RECORD 32
#define RECV_BUF (64 * 1024)

typedef struct {
  bool del;
  uint8_t keylen;
  char set[MAX_NAME];
  uint32_t n;
  unsigned char *keys;
  uint64_t *timeouts; /* NULL, or ntimeouts (n or 1) values */
  uint32_t ntimeouts;
} elem_op;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char table[MAX_NAME];
  uint32_t nops;
  elem_op ops[MAX_OPS];
  int err;       /* positive errno, 0 = committed */
  int err_op;    /* index of the op whose message the kernel refused, -1 = the batch as a whole */
} apply_job;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char table[MAX_NAME];
  char set[MAX_NAME];
  uint8_t keylen;
  uint32_t max;
  unsigned char *out;
  size_t count, cap;
  int err;
} list_job;

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int get_name(napi_env env, napi_value v, char *out, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok) return -1;
  return (len == 0 || len >= cap - 1 || strlen(out) != len) ? -1 : 0;
}

static int open_socket(int rcvbuf) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return -errno;
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)); /* errors without our message */
  if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  return fd;
}

static size_t put_hdr(char *buf, size_t off, uint16_t type, uint16_t flags, uint32_t seq, uint8_t family, uint16_t res_id) {
  struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
  memset(h, 0, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq;
  struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(h);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
  return off + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
}

static uint64_t be64(uint64_t v) {
  return ((uint64_t)htonl((uint32_t)v) << 32) | htonl((uint32_t)(v >> 32));
}

/* The whole batch in one buffer; *msg_op gets the op index of each message (by seq - 1). */
static char *build_batch(apply_job *j, size_t *len, int **msg_op, uint32_t *nmsgs) {
  size_t size = 2 * (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  uint32_t msgs = 0;
  for (uint32_t i = 0; i < j->nops; i++) {
    uint32_t m = (j->ops[i].n + PER_MSG - 1) / PER_MSG;
    msgs += m;
    size += (size_t)m * MSG_OVERHEAD + (size_t)j->ops[i].n * ELEM_MAX;
  }
  char *buf = malloc(size);
  int *owner = malloc((msgs + 2) * sizeof(int));
  if (!buf || !owner) {
    free(buf);
    free(owner);
    return NULL;
  }
  uint32_t seq = 1;
  size_t off = put_hdr(buf, 0, NFNL_MSG_BATCH_BEGIN, 0, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  ((struct nlmsghdr *)buf)->nlmsg_len = (uint32_t)off;
  owner[seq - 1] = -1;
  uint32_t sent = 0;
  for (uint32_t i = 0; i < j->nops; i++) {
    elem_op *op = &j->ops[i];
    for (uint32_t first = 0; first < op->n; first += PER_MSG) {
      uint32_t last = first + PER_MSG < op->n ? first + PER_MSG : op->n;
      bool final = ++sent == msgs;
      size_t start = off;
      uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | (op->del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM);
      /* the last message alone asks for an ack: errors are always answered, so an ack of 0 for it
       * and no error means the batch committed (the kernel answers within our sendmsg) */
      uint16_t flags = (op->del ? 0 : NLM_F_CREATE) | (final ? NLM_F_ACK : 0);
      off = put_hdr(buf, off, type, flags, ++seq, NFPROTO_INET, 0);
      owner[seq - 1] = (int)i;
      off = put_attr(buf, off, NFTA_SET_ELEM_LIST_TABLE, j->table, strlen(j->table) + 1);
      off = put_attr(buf, off, NFTA_SET_ELEM_LIST_SET, op->set, strlen(op->set) + 1);
      size_t elems = off;
      off = open_nest(buf, off, NFTA_SET_ELEM_LIST_ELEMENTS);
      for (uint32_t e = first; e < last; e++) {
        size_t item = off;
        off = open_nest(buf, off, NFTA_LIST_ELEM);
        size_t k = off;
        off = open_nest(buf, off, NFTA_SET_ELEM_KEY);
        off = put_attr(buf, off, NFTA_DATA_VALUE, op->keys + (size_t)e * op->keylen, op->keylen);
        close_nest(buf, k, off);
        uint64_t t = op->timeouts ? op->timeouts[op->ntimeouts == 1 ? 0 : e] : 0;
        if (t) {
          uint64_t v = be64(t);
          off = put_attr(buf, off, NFTA_SET_ELEM_TIMEOUT, &v, sizeof(v));
        }
        close_nest(buf, item, off);
      }
      close_nest(buf, elems, off);
      ((struct nlmsghdr *)(buf + start))->nlmsg_len = (uint32_t)(off - start);
    }
  }
  size_t end = off;
  off = put_hdr(buf, off, NFNL_MSG_BATCH_END, 0, ++seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  ((struct nlmsghdr *)(buf + end))->nlmsg_len = (uint32_t)(off - end);
  owner[seq - 1] = -1;
  *len = off;
  *msg_op = owner;
  *nmsgs = seq;
  return buf;
}

static void apply_execute(napi_env env, void *data) {
  (void)env;
  apply_job *j = (apply_job *)data;
  j->err_op = -1;
  uint32_t total = 0;
  for (uint32_t i = 0; i < j->nops; i++) total += j->ops[i].n;
  if (total == 0) return;
  size_t len = 0;
  int *owner = NULL;
  uint32_t nmsgs = 0;
  char *buf = build_batch(j, &len, &owner, &nmsgs);
  if (!buf) {
    j->err = ENOMEM;
    return;
  }
  /* one error answer at most per message, each a small skb */
  int fd = open_socket(nmsgs > 1024 ? 4 << 20 : 1 << 20);
  if (fd < 0) {
    j->err = -fd;
    goto out;
  }
  int snd = (int)(len + 4096);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t s;
  do s = sendto(fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
  while (s < 0 && errno == EINTR);
  if (s < 0) {
    j->err = errno;
    goto out;
  }
  uint32_t last_seq = nmsgs - 1; /* the final data message (BATCH_END is nmsgs) */
  bool acked = false;
  int first_err = 0;
  for (int flags = 0;; flags = MSG_DONTWAIT) {
    ssize_t n = recv(fd, buf, len < RECV_BUF ? len : RECV_BUF, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (flags == 0) first_err = first_err ? first_err : ETIMEDOUT;
        break;
      }
      if (!first_err) first_err = errno; /* ENOBUFS: answers lost, the batch failed */
      break;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq == 0 || h->nlmsg_seq > nmsgs) continue;
      const struct nlmsgerr *e = (const struct nlmsgerr *)NLMSG_DATA(h);
      if (e->error == 0) {
        if (h->nlmsg_seq == last_seq) acked = true;
      } else if (!first_err) {
        first_err = -e->error;
        j->err_op = owner[h->nlmsg_seq - 1];
      }
    }
  }
  j->err = first_err ? first_err : acked ? 0 : EPROTO;
out:
  if (fd >= 0) close(fd);
  free(buf);
  free(owner);
}

static napi_value errno_error(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof(text), "nftables netlink: %s: %s", what, strerror(err));
  napi_value msg, e, v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &e);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  return e;
}

static void free_ops(apply_job *j) {
  for (uint32_t i = 0; i < j->nops; i++) {
    free(j->ops[i].keys);
    free(j->ops[i].timeouts);
  }
}

static void apply_complete(napi_env env, napi_status status, void *data) {
  apply_job *j = (apply_job *)data;
  if (status != napi_ok) {
    napi_reject_deferred(env, j->deferred, errno_error(env, ECANCELED, "applyElements"));
  } else if (j->err) {
    char what[160];
    if (j->err_op >= 0) {
      elem_op *op = &j->ops[j->err_op];
      snprintf(what, sizeof(what), "%s element of %s %s", op->del ? "delete" : "add", j->table, op->set);
    } else snprintf(what, sizeof(what), "batch on table %s", j->table);
    napi_value e = errno_error(env, j->err, what), v;
    if (j->err_op >= 0) {
      napi_create_int32(env, j->err_op, &v);
      napi_set_named_property(env, e, "op", v);
      napi_create_string_utf8(env, j->ops[j->err_op].set, NAPI_AUTO_LENGTH, &v);
      napi_set_named_property(env, e, "set", v);
    }
    napi_reject_deferred(env, j->deferred, e);
  } else {
    napi_value u;
    napi_get_undefined(env, &u);
    napi_resolve_deferred(env, j->deferred, u);
  }
  napi_delete_async_work(env, j->work);
  free_ops(j);
  free(j);
}

/* one op from JS: checked and copied; NULL or the TypeError's text */
static const char *read_op(napi_env env, napi_value o, elem_op *op, uint32_t *total) {
  napi_value v;
  bool b = false;
  uint32_t keylen = 0;
  void *data = NULL;
  size_t len = 0;
  if (napi_get_named_property(env, o, "set", &v) != napi_ok || get_name(env, v, op->set, MAX_NAME) != 0)
    return "applyElements: op.set must be a name of 1-62 bytes";
  if (napi_get_named_property(env, o, "del", &v) != napi_ok || napi_get_value_bool(env, v, &b) != napi_ok)
    return "applyElements: op.del must be a boolean";
  op->del = b;
  if (napi_get_named_property(env, o, "keyLen", &v) != napi_ok || napi_get_value_uint32(env, v, &keylen) != napi_ok ||
      (keylen != 4 && keylen != 16))
    return "applyElements: op.keyLen must be 4 or 16";
  op->keylen = (uint8_t)keylen;
  if (napi_get_named_property(env, o, "keys", &v) != napi_ok || napi_is_buffer(env, v, &b) != napi_ok || !b ||
      napi_get_buffer_info(env, v, &data, &len) != napi_ok)
    return "applyElements: op.keys must be a Buffer";
  if (len % keylen) return "applyElements: op.keys length is not a multiple of keyLen";
  if (len / keylen > MAX_ELEMS - *total) return "applyElements: too many elements in one call (at most 4194304)";
  op->n = (uint32_t)(len / keylen);
  *total += op->n;
  if (op->n && !(op->keys = malloc(len))) return "applyElements: out of memory";
  if (op->n) memcpy(op->keys, data, len);
  bool has = false;
  if (napi_has_named_property(env, o, "timeoutsMs", &has) != napi_ok) return "applyElements: bad op";
  if (!has) return NULL;
  if (napi_get_named_property(env, o, "timeoutsMs", &v) != napi_ok) return "applyElements: bad op";
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (vt == napi_undefined) return NULL;
  if (op->del) return "applyElements: a delete op takes no timeouts";
  bool is_ta = false;
  napi_typedarray_type tt;
  size_t count = 0;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &tt, &count, &data, NULL, NULL) != napi_ok ||
      (tt != napi_float64_array && tt != napi_biguint64_array))
    return "applyElements: op.timeoutsMs must be a Float64Array or a BigUint64Array";
  if (count != op->n && count != 1) return "applyElements: op.timeoutsMs must hold one value or one per key";
  op->ntimeouts = (uint32_t)count;
  if (!(op->timeouts = malloc(count * sizeof(uint64_t)))) return "applyElements: out of memory";
  for (size_t i = 0; i < count; i++) {
    uint64_t t;
    if (tt == napi_float64_array) {
      double d = ((const double *)data)[i];
      /* the kernel's own limit (ERANGE over ~584 years) is left to the kernel: a refused element,
       * like the text path's */
      if (!isfinite(d) || d < 0 || d > 9007199254740991.0) return "applyElements: a timeout must be 0..2^53-1 ms";
      t = (uint64_t)ceil(d);
    } else {
      t = ((const uint64_t *)data)[i];
    }
    op->timeouts[i] = t;
  }
  return NULL;
}

static napi_value queue(napi_env env, void *job, const char *name, napi_async_execute_callback exec,
                        napi_async_complete_callback done, napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, n;
  if (napi_create_promise(env, deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n) != napi_ok ||
      napi_create_async_work(env, NULL, n, exec, done, job, work) != napi_ok || napi_queue_async_work(env, *work) != napi_ok) {
    napi_throw_error(env, NULL, "nftables addon: cannot queue the netlink work");
    return NULL;
  }
  return promise;
}

/* applyElements(table, ops) -> Promise<void> */
napi_value pbxg_apply_elements(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type(env, "applyElements(table, ops)");
  apply_job *j = calloc(1, sizeof(*j));
  if (!j) {
    napi_throw_error(env, NULL, "nftables addon: out of memory");
    return NULL;
  }
  bool is_array = false;
  const char *bad = NULL;
  uint32_t total = 0;
  if (get_name(env, argv[0], j->table, sizeof(j->table)) != 0) bad = "applyElements: table must be a name of 1-62 bytes";
  else if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) bad = "applyElements: ops must be an array";
  uint32_t nops = 0;
  if (!bad && (napi_get_array_length(env, argv[1], &nops) != napi_ok || nops > MAX_OPS)) bad = "applyElements: at most 8 ops";
  /* ops are counted as they are read: free_ops() frees only those */
  for (uint32_t i = 0; !bad && i < nops; i++, j->nops++) {
    napi_value o;
    napi_valuetype t = napi_undefined;
    if (napi_get_element(env, argv[1], i, &o) != napi_ok || napi_typeof(env, o, &t) != napi_ok || t != napi_object) bad = "applyElements: an op must be an object";
    else bad = read_op(env, o, &j->ops[i], &total);
  }
  if (bad) {
    free_ops(j);
    free(j);
    return throw_type(env, bad);
  }
  napi_value p = queue(env, j, "pbxg_nft_apply_elements", apply_execute, apply_complete, &j->work, &j->deferred);
  if (!p) {
    free_ops(j);
    free(j);
  }
  return p;
}

static void put_le_double(unsigned char *p, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(u >> (8 * i));
}

static uint64_t get_be64(const void *p) {
  uint64_t v;
  memcpy(&v, p, sizeof(v));
  return be64(v);
}

#define ATTRS(a, start, end) \
  for (const struct nlattr *a = (const struct nlattr *)(start); \
       (const char *)a + NLA_HDRLEN <= (const char *)(end) && a->nla_len >= NLA_HDRLEN && (const char *)a + a->nla_len <= (const char *)(end); \
       a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len)))
#define PAYLOAD(a) ((const char *)(a) + NLA_HDRLEN)
#define PLEN(a) ((size_t)((a)->nla_len - NLA_HDRLEN))
#define ATYPE(a) ((a)->nla_type & NLA_TYPE_MASK)

/* one LIST_ELEM nest into a record; 0, or -errno */
static int take_elem(list_job *l, const struct nlattr *item) {
  const void *key = NULL;
  uint64_t timeout = 0, expires = 0;
  uint32_t flags = 0;
  ATTRS(a, PAYLOAD(item), PAYLOAD(item) + PLEN(item)) {
    if (ATYPE(a) == NFTA_SET_ELEM_KEY) {
      ATTRS(k, PAYLOAD(a), PAYLOAD(a) + PLEN(a)) if (ATYPE(k) == NFTA_DATA_VALUE && PLEN(k) == l->keylen) key = PAYLOAD(k);
    } else if (ATYPE(a) == NFTA_SET_ELEM_TIMEOUT && PLEN(a) == 8) timeout = get_be64(PAYLOAD(a));
    else if (ATYPE(a) == NFTA_SET_ELEM_EXPIRATION && PLEN(a) == 8) expires = get_be64(PAYLOAD(a));
    else if (ATYPE(a) == NFTA_SET_ELEM_FLAGS && PLEN(a) == 4) {
      memcpy(&flags, PAYLOAD(a), 4);
      flags = ntohl(flags);
    }
  }
  if (!key || (flags & NFT_SET_ELEM_INTERVAL_END)) return 0;
  if (l->count == l->cap) {
    if (l->cap >= l->max) return -E2BIG;
    size_t cap = l->cap ? l->cap * 2 : 4096;
    if (cap > l->max) cap = l->max;
    unsigned char *p = realloc(l->out, cap * RECORD);
    if (!p) return -ENOMEM;
    l->out = p;
    l->cap = cap;
  }
  unsigned char *r = l->out + l->count++ * RECORD;
  memset(r, 0, 16);
  memcpy(r, key, l->keylen);
  put_le_double(r + 16, (double)timeout);
  put_le_double(r + 24, timeout ? (double)expires : 0);
  return 0;
}

/* one dump; 0, 1 when the kernel marked it inconsistent (NLM_F_DUMP_INTR), or -errno */
static int dump_once(list_job *l, int fd, uint32_t seq, char *buf) {
  size_t off = put_hdr(buf, 0, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, NLM_F_DUMP, seq, NFPROTO_INET, 0);
  off = put_attr(buf, off, NFTA_SET_ELEM_LIST_TABLE, l->table, strlen(l->table) + 1);
  off = put_attr(buf, off, NFTA_SET_ELEM_LIST_SET, l->set, strlen(l->set) + 1);
  ((struct nlmsghdr *)buf)->nlmsg_len = (uint32_t)off;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, buf, off, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) return -errno;
  int intr = 0, rc = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, RECV_BUF, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) intr = 1;
      if (h->nlmsg_type == NLMSG_DONE) {
        int e = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) memcpy(&e, NLMSG_DATA(h), sizeof(int));
        return rc ? rc : e < 0 ? e : intr;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = (const struct nlmsgerr *)NLMSG_DATA(h);
        return e->error ? e->error : rc;
      }
      if (rc || h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) continue;
      const char *p = (const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
      ATTRS(a, p, (const char *)h + h->nlmsg_len) {
        if (ATYPE(a) != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
        ATTRS(item, PAYLOAD(a), PAYLOAD(a) + PLEN(a)) {
          if (ATYPE(item) == NFTA_LIST_ELEM && (rc = take_elem(l, item)) != 0) break;
        }
      }
      /* on an error the rest of the dump is still read, to its end */
    }
  }
}

static void list_execute(napi_env env, void *data) {
  (void)env;
  list_job *l = (list_job *)data;
  char *buf = malloc(RECV_BUF);
  int fd = buf ? open_socket(0) : -ENOMEM;
  if (fd < 0) {
    l->err = -fd;
    free(buf);
    return;
  }
  int rc = 1;
  for (uint32_t attempt = 1; rc == 1 && attempt <= 3; attempt++) {
    l->count = 0;
    rc = dump_once(l, fd, attempt, buf);
  }
  l->err = rc == 1 ? EINTR : rc < 0 ? -rc : 0;
  close(fd);
  free(buf);
}

static void free_out(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void list_complete(napi_env env, napi_status status, void *data) {
  list_job *l = (list_job *)data;
  char what[160];
  snprintf(what, sizeof(what), "list elements of %s %s", l->table, l->set);
  napi_value result;
  if (status != napi_ok || l->err) {
    napi_reject_deferred(env, l->deferred, errno_error(env, status != napi_ok ? ECANCELED : l->err, what));
    free(l->out);
  } else if (l->count == 0) {
    napi_create_buffer(env, 0, NULL, &result);
    napi_resolve_deferred(env, l->deferred, result);
    free(l->out);
  } else if (napi_create_external_buffer(env, l->count * RECORD, l->out, free_out, NULL, &result) == napi_ok) {
    napi_resolve_deferred(env, l->deferred, result);
  } else {
    /* a runtime that forbids external buffers: one copy */
    if (napi_create_buffer_copy(env, l->count * RECORD, l->out, NULL, &result) == napi_ok) napi_resolve_deferred(env, l->deferred, result);
    else napi_reject_deferred(env, l->deferred, errno_error(env, ENOMEM, what));
    free(l->out);
  }
  napi_delete_async_work(env, l->work);
  free(l);
}

/* listElements(table, set, keyLen, maxElems) -> Promise<Buffer> */
napi_value pbxg_list_elements(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_type(env, "listElements(table, set, keyLen, maxElems)");
  list_job *l = calloc(1, sizeof(*l));
  if (!l) {
    napi_throw_error(env, NULL, "nftables addon: out of memory");
    return NULL;
  }
  uint32_t keylen = 0;
  const char *bad = NULL;
  if (get_name(env, argv[0], l->table, sizeof(l->table)) != 0) bad = "listElements: table must be a name of 1-62 bytes";
  else if (get_name(env, argv[1], l->set, sizeof(l->set)) != 0) bad = "listElements: set must be a name of 1-62 bytes";
  else if (napi_get_value_uint32(env, argv[2], &keylen) != napi_ok || (keylen != 4 && keylen != 16)) bad = "listElements: keyLen must be 4 or 16";
  else if (napi_get_value_uint32(env, argv[3], &l->max) != napi_ok || l->max < 1 || l->max > MAX_LIST) bad = "listElements: maxElems must be 1..16777216";
  if (bad) {
    free(l);
    return throw_type(env, bad);
  }
  l->keylen = (uint8_t)keylen;
  napi_value p = queue(env, l, "pbxg_nft_list_elements", list_execute, list_complete, &l->work, &l->deferred);
  if (!p) free(l);
  return p;
}
