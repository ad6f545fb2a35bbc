package dashboard

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// hostList is the Host names a dashboard answers besides the loopback ones, from
// WithAllowedHosts.
type hostList struct {
	given    bool            // WithAllowedHosts was passed, even with no hosts
	exact    map[string]bool // normalized names and addresses
	suffixes []string        // ".example.com" for "*.example.com"
}

// parseAllowedHost normalizes an argument of WithAllowedHosts: a lowercase name
// without trailing dot, or an IP address in its canonical form; wildcard reports a
// leading "*.", which is cut off.
func parseAllowedHost(h string) (name string, wildcard bool, err error) {
	s := strings.ToLower(h)
	switch {
	case s == "":
		return "", false, fmt.Errorf("an empty host")
	case strings.ContainsAny(s, "/@?# \t\r\n"):
		return "", false, fmt.Errorf("%q is not a host name: give the name alone, without scheme or path", h)
	}
	s, wildcard = strings.CutPrefix(s, "*.")
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() {
			return "", false, fmt.Errorf("%q is not a bracketed IPv6 address", h)
		}
	}
	s = strings.TrimSuffix(s, ".")
	a, ipErr := netip.ParseAddr(s)
	switch {
	case s == "" || strings.Contains(s, "*"):
		return "", false, fmt.Errorf("%q: a wildcard is only a leading \"*.\" before a name", h)
	case wildcard && ipErr == nil:
		return "", false, fmt.Errorf("%q: a wildcard needs a name, not an address", h)
	case ipErr == nil:
		return a.String(), false, nil
	case strings.Contains(s, ":"):
		return "", false, fmt.Errorf("%q has a port, or is not an address: give the host alone (any port is allowed)", h)
	}
	return s, wildcard, nil
}

// hostName returns the name or address in the Host header value hostport,
// normalized as parseAllowedHost does: the port cut off, lowercase, no trailing
// dot, an address in canonical form without brackets. It returns "" for a
// malformed value.
func hostName(hostport string) string {
	h := hostport
	if rest, ok := strings.CutPrefix(h, "["); ok {
		addr, port, ok := strings.Cut(rest, "]")
		if !ok || (port != "" && !strings.HasPrefix(port, ":")) {
			return ""
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.Is6() {
			return ""
		}
		return a.String()
	}
	if strings.Count(h, ":") == 1 {
		h, _, _ = strings.Cut(h, ":")
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	if strings.Contains(h, ":") {
		return ""
	}
	return h
}

// isLoopback reports whether name, as hostName returns it, names the local machine
// whatever DNS says: "localhost", a name under ".localhost" (which browsers resolve
// to loopback themselves, RFC 6761), an address in 127.0.0.0/8 or ::1.
func isLoopback(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(name)
	return err == nil && a.Unmap().IsLoopback()
}

// restrictsHosts reports whether the dashboard checks the Host of requests: always
// without authentication, and with it when WithAllowedHosts was given.
func (c *config) restrictsHosts() bool {
	return len(c.auth) == 0 || c.hosts.given
}

// hostAllowed reports whether the dashboard answers a request for r.Host.
func (c *config) hostAllowed(r *http.Request) bool {
	if !c.restrictsHosts() {
		return true
	}
	name := hostName(r.Host)
	if name == "" {
		return false
	}
	if isLoopback(name) || c.hosts.exact[name] {
		return true
	}
	for _, suffix := range c.hosts.suffixes {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// hostRefused answers 403 Forbidden, in plain text for pages and API alike, to a
// request whose Host the dashboard does not answer.
func hostRefused(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintf(w, "dashboard: host %q is not allowed: against DNS rebinding, this dashboard answers only "+
		"loopback names (localhost, 127.0.0.1, [::1]) and the hosts given to dashboard.WithAllowedHosts\n", r.Host)
}
