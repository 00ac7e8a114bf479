/*
 * pbx-guardian: is one element in a set of our table? One netlink request per set
 * (NFT_MSG_GETSETELEM without NLM_F_DUMP): the kernel looks the key up and answers the element or
 * ENOENT. The firewall watchdog checks its canary elements this way because `nft get element`
 * (libnftables 1.0.6) first fetches every element of the set into its cache: ~0.75 s at 100k
 * elements (measured), where this lookup costs a few microseconds at any set size.
 *
 *   hasElements(table, [{ set, key }]) -> number[]   1 present, 0 absent (ENOENT), -errno otherwise
 *
 * Synchronous: each lookup is one send and one short receive on a local netlink socket (bounded
 * by a 1 s receive timeout). Nothing is changed in the kernel.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <node_api.h>

#define MAX_NAME 64
#define BUF_SIZE 8192

static size_t put_attr(char *buf, size_t off, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = (struct nlattr *)(buf + off);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len) memcpy(buf + off + NLA_HDRLEN, data, len);
  size_t end = off + NLA_ALIGN(NLA_HDRLEN + len);
  memset(buf + off + NLA_HDRLEN + len, 0, end - (off + NLA_HDRLEN + len));
  return end;
}

/* opens a nested attribute at off; close_nest() fixes its length */
static size_t open_nest(char *buf, size_t off, uint16_t type) {
  struct nlattr *a = (struct nlattr *)(buf + off);
  a->nla_type = type | NLA_F_NESTED;
  a->nla_len = NLA_HDRLEN;
  return off + NLA_HDRLEN;
}

static void close_nest(char *buf, size_t start, size_t end) {
  ((struct nlattr *)(buf + start))->nla_len = (uint16_t)(end - start);
}

/* 1 present, 0 absent, -errno */
static int lookup(int fd, uint32_t seq, const char *table, const char *set, const void *key, size_t keylen) {
  char buf[BUF_SIZE];
  memset(buf, 0, 256);
  struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(nlh);
  g->nfgen_family = NFPROTO_INET;
  g->version = NFNETLINK_V0;
  g->res_id = 0;
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*g));
  off = put_attr(buf, off, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
  off = put_attr(buf, off, NFTA_SET_ELEM_LIST_SET, set, strlen(set) + 1);
  size_t elems = off;
  off = open_nest(buf, off, NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t item = off;
  off = open_nest(buf, off, NFTA_LIST_ELEM);
  size_t k = off;
  off = open_nest(buf, off, NFTA_SET_ELEM_KEY);
  off = put_attr(buf, off, NFTA_DATA_VALUE, key, keylen);
  close_nest(buf, k, off);
  close_nest(buf, item, off);
  close_nest(buf, elems, off);
  nlh->nlmsg_len = (uint32_t)off;

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, buf, off, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) return -errno;
  int found = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue; /* a late answer to an earlier request */
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = (const struct nlmsgerr *)NLMSG_DATA(h);
        if (e->error == 0) return found;
        return e->error == -ENOENT ? 0 : e->error;
      }
      if (h->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) found = 1;
    }
  }
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *out, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok) return -1;
  return (len == 0 || len >= cap - 1 || strlen(out) != len) ? -1 : 0;
}

napi_value pbxg_has_elements(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type(env, "hasElements(table, probes)");
  char table[MAX_NAME];
  if (get_string(env, argv[0], table, sizeof(table)) != 0) return throw_type(env, "hasElements: table must be a name of 1-62 bytes");
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return throw_type(env, "hasElements: probes must be an array");
  napi_get_array_length(env, argv[1], &count);
  if (count > 64) return throw_type(env, "hasElements: at most 64 probes");
  napi_value result;
  napi_create_array_with_length(env, count, &result);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  int open_err = fd < 0 ? -errno : 0;
  if (fd >= 0) {
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
      open_err = -errno;
      close(fd);
      fd = -1;
    }
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value probe, v;
    char set[MAX_NAME];
    void *key = NULL;
    size_t keylen = 0;
    napi_get_element(env, argv[1], i, &probe);
    if (napi_get_named_property(env, probe, "set", &v) != napi_ok || get_string(env, v, set, sizeof(set)) != 0) {
      if (fd >= 0) close(fd);
      return throw_type(env, "hasElements: probe.set must be a set name");
    }
    bool is_buf = false;
    if (napi_get_named_property(env, probe, "key", &v) != napi_ok || napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf ||
        napi_get_buffer_info(env, v, &key, &keylen) != napi_ok || (keylen != 4 && keylen != 16)) {
      if (fd >= 0) close(fd);
      return throw_type(env, "hasElements: probe.key must be a 4 or 16 byte Buffer");
    }
    int rc = fd < 0 ? open_err : lookup(fd, i + 1, table, set, key, keylen);
    napi_create_int32(env, rc, &v);
    napi_set_element(env, result, i, v);
  }
  if (fd >= 0) close(fd);
  return result;
}
