/* pbx-guardian: netlink attribute writers shared by the raw-netlink parts of the addon. The
 * caller sizes the buffer: every writer here assumes room for what it writes. */
#ifndef PBXG_NL_ATTR_H
#define PBXG_NL_ATTR_H
#include <stdint.h>
#include <string.h>
#include <linux/netlink.h>

static inline size_t put_attr(char *buf, size_t off, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = (struct nlattr *)(buf + off);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len) memcpy(buf + off + NLA_HDRLEN, data, len);
  size_t end = off + NLA_ALIGN(NLA_HDRLEN + len);
  memset(buf + off + NLA_HDRLEN + len, 0, end - (off + NLA_HDRLEN + len));
  return end;
}

/* opens a nested attribute at off; close_nest() fixes its length */
static inline size_t open_nest(char *buf, size_t off, uint16_t type) {
  struct nlattr *a = (struct nlattr *)(buf + off);
  a->nla_type = type | NLA_F_NESTED;
  a->nla_len = NLA_HDRLEN;
  return off + NLA_HDRLEN;
}

static inline void close_nest(char *buf, size_t start, size_t end) {
  ((struct nlattr *)(buf + start))->nla_len = (uint16_t)(end - start);
}
#endif
