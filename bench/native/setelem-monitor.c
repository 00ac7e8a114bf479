/*
 * The benchmark's instrument: the moment the kernel announces each new IPv4 element of one
 * nftables set. It listens on the nftables netlink multicast group (what `nft monitor` reads)
 * and prints, per element, "<CLOCK_MONOTONIC ns> <a.b.c.d>\n". The time is taken when recv()
 * returns, so a reader that falls behind does not shift it. `nft monitor` formats every element
 * through its cache and prints it as text (~15 µs each); when thousands land at once, that lag,
 * not the kernel, was what a burst measured.
 *
 * If the socket buffer overflows (ENOBUFS), "! overflow" is printed: notifications were lost.
 *
 * Usage: setelem-monitor <set name>        (root; build: cc -O2 -o setelem-monitor setelem-monitor.c)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RCVBUF (64 * 1024 * 1024)

static char out[1 << 20];
static size_t outLen;

static void flushOut(void) {
  size_t off = 0;
  while (off < outLen) {
    ssize_t w = write(1, out + off, outLen - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(1); /* the reader is gone */
    }
    off += (size_t)w;
  }
  outLen = 0;
}

static void emit(uint64_t ns, const uint8_t *a) {
  if (outLen + 64 > sizeof out) flushOut();
  outLen += (size_t)snprintf(out + outLen, 64, "%llu %u.%u.%u.%u\n", (unsigned long long)ns, a[0], a[1], a[2], a[3]);
}

/* Attributes are 4-byte aligned TLVs; NLA_TYPE_MASK drops the nested / byte-order flags. */
#define ATTR_ALIGN(n) (((n) + 3u) & ~3u)
#define FOR_ATTRS(p, end, a)                                                                        \
  for (const struct nlattr *a = (const struct nlattr *)(p);                                       \
       (const char *)a + sizeof(struct nlattr) <= (end) && a->nla_len >= sizeof(struct nlattr) &&  \
       (const char *)a + a->nla_len <= (end);                                                      \
       a = (const struct nlattr *)((const char *)a + ATTR_ALIGN(a->nla_len)))
#define PAYLOAD(a) ((const char *)(a) + NLA_HDRLEN)
#define PAYLOAD_END(a) ((const char *)(a) + (a)->nla_len)
#define TYPE(a) ((a)->nla_type & NLA_TYPE_MASK)

static void element(const struct nlattr *elem, uint64_t ns) {
  FOR_ATTRS(PAYLOAD(elem), PAYLOAD_END(elem), e) {
    if (TYPE(e) != NFTA_SET_ELEM_KEY) continue;
    FOR_ATTRS(PAYLOAD(e), PAYLOAD_END(e), v) {
      if (TYPE(v) == NFTA_DATA_VALUE && v->nla_len == NLA_HDRLEN + 4) emit(ns, (const uint8_t *)PAYLOAD(v));
    }
  }
}

static void newSetElements(const struct nlmsghdr *h, const char *setName, uint64_t ns) {
  const char *p = (const char *)NLMSG_DATA(h) + sizeof(struct nfgenmsg);
  const char *end = (const char *)h + h->nlmsg_len;
  const struct nlattr *list = NULL;
  int ours = 0;
  FOR_ATTRS(p, end, a) {
    if (TYPE(a) == NFTA_SET_ELEM_LIST_SET) ours = strncmp(PAYLOAD(a), setName, (size_t)(PAYLOAD_END(a) - PAYLOAD(a))) == 0;
    else if (TYPE(a) == NFTA_SET_ELEM_LIST_ELEMENTS) list = a;
  }
  if (!ours || !list) return;
  FOR_ATTRS(PAYLOAD(list), PAYLOAD_END(list), el) {
    if (TYPE(el) == NFTA_LIST_ELEM) element(el, ns);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: setelem-monitor <set name>\n");
    return 2;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int size = RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_nl addr = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    perror("bind");
    return 1;
  }
  int group = NFNLGRP_NFTABLES;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
    perror("NETLINK_ADD_MEMBERSHIP");
    return 1;
  }
  fputs("ready\n", stdout);
  fflush(stdout);
  static char buf[1 << 16] __attribute__((aligned(4)));
  const uint16_t newSetElem = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        memcpy(out + outLen, "! overflow\n", 11);
        outLen += 11;
        flushOut();
        continue;
      }
      perror("recv");
      return 1;
    }
    int len = (int)n;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == newSetElem) newSetElements(h, argv[1], ns);
    }
    flushOut();
  }
}
