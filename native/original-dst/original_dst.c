/*
 * originalDst(fd) → { address, port, family } | null
 *
 * The destination a TCP connection had before an iptables REDIRECT (or DNAT)
 * rewrote it, read from conntrack with getsockopt:
 *   IPv4 sockets:  SOL_IP   / SO_ORIGINAL_DST      (80, <linux/netfilter_ipv4.h>)
 *   IPv6 sockets:  SOL_IPV6 / IP6T_SO_ORIGINAL_DST (80, <linux/netfilter_ipv6/ip6_tables.h>)
 * An IPv6 socket carrying an IPv4 connection (v4-mapped, a dual-stack "::"
 * listener) is tracked by IPv4 conntrack, so it falls back to SOL_IP.
 *
 * null: the fd is not a socket, conntrack has no entry (nothing was NATed and
 * conntrack is not loaded), or any other error; never throws for those. A
 * connection conntrack tracks but did not rewrite returns its own local address:
 * the caller compares (src/proxy/upstream/original-dst-addon.ts).
 *
 * Plain N-API (node_api.h): no node-addon-api, ABI-stable across Node versions.
 * The constants are defined here rather than taken from the kernel headers,
 * which clash with <netinet/in.h> on some libcs. Off Linux it always answers null.
 */
#include <node_api.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#define SO_ORIGINAL_DST_OPT 80
#define IP6T_SO_ORIGINAL_DST_OPT 80

static napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

#ifdef __linux__
static napi_value describe(napi_env env, const struct sockaddr_storage *ss) {
  char text[INET6_ADDRSTRLEN];
  unsigned port;
  int family;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    if (inet_ntop(AF_INET, &a->sin_addr, text, sizeof text) == NULL) return null_value(env);
    port = ntohs(a->sin_port);
    family = 4;
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    if (inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text) == NULL) return null_value(env);
    port = ntohs(a->sin6_port);
    family = 6;
  } else {
    return null_value(env);
  }
  napi_value obj, address, port_v, family_v;
  if (napi_create_object(env, &obj) != napi_ok) return null_value(env);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_uint32(env, port, &port_v);
  napi_create_uint32(env, (uint32_t)family, &family_v);
  napi_set_named_property(env, obj, "address", address);
  napi_set_named_property(env, obj, "port", port_v);
  napi_set_named_property(env, obj, "family", family_v);
  return obj;
}
#endif

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "originalDst(fd): fd must be a number");
    return NULL;
  }
#ifdef __linux__
  if (fd < 0) return null_value(env);
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) return null_value(env);

  struct sockaddr_storage dst;
  socklen_t len;
  int rc = -1;
  memset(&dst, 0, sizeof dst);
  if (local.ss_family == AF_INET) {
    len = sizeof(struct sockaddr_in);
    rc = getsockopt(fd, IPPROTO_IP, SO_ORIGINAL_DST_OPT, &dst, &len);
  } else if (local.ss_family == AF_INET6) {
    len = sizeof(struct sockaddr_in6);
    rc = getsockopt(fd, IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST_OPT, &dst, &len);
    if (rc != 0 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr)) {
      memset(&dst, 0, sizeof dst);
      len = sizeof(struct sockaddr_in);
      rc = getsockopt(fd, IPPROTO_IP, SO_ORIGINAL_DST_OPT, &dst, &len);
    }
  }
  if (rc != 0) return null_value(env);
  return describe(env, &dst);
#else
  (void)fd;
  return null_value(env);
#endif
}

/*
 * mallocTrim() → boolean
 *
 * glibc's malloc_trim(0): returns the free pages of every malloc arena to the
 * kernel. After an HTTP/2 flood the native memory its streams used is free
 * again once a full GC ran, but glibc keeps the pages (the arena is
 * fragmented, so its top is never free enough to shrink on its own):
 * src/proxy/overload/flood-gc.ts calls this after its collection. true if
 * memory was released; false off glibc (musl returns freed pages itself).
 */
static napi_value malloc_trim_fn(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
#if defined(__GLIBC__)
  napi_get_boolean(env, malloc_trim(0) == 1, &out);
#else
  napi_get_boolean(env, false, &out);
#endif
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "originalDst", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, malloc_trim_fn, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "mallocTrim", fn) != napi_ok) return NULL;
  return exports;
}
