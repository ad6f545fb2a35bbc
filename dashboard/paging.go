package dashboard

import (
	"net/url"
	"strconv"
	"strings"
)

// Paging of the job and event lists both ways. jobrun's List and Events page one
// way only, by an opaque cursor (the position after the last entry read), and a
// cursor read backwards is not the page before (a list may read several indexes in
// turn). So a page's URL carries, besides its own cursor, the cursors of the pages
// before it ("prev", the latest maxPrevCursors of them, comma-separated) and its
// number ("page"): the link to the previous page is the last of them, and each of
// them is a numbered link. Past maxPrevCursors pages the earliest ones are dropped,
// and shown as a gap after page 1.

// maxPrevCursors bounds the cursors a page's URL carries: about 25 bytes each.
const maxPrevCursors = 20

// pager is the navigation of one page of a list.
type pager struct {
	PrevHref, NextHref string     // the pages before and after, "" if none
	PrevLabel          string     // "newer" (or "older" for a list oldest first)
	NextLabel          string     // "older" (or "newer")
	Pages              []pageLink // the numbered pages up to this one
	Self               string     // this page's own URL, to return to after an action
}

type pageLink struct {
	N       int
	Href    string
	Current bool
	Gap     bool // pages whose cursors were dropped
}

// pageHref builds the URL of a page of the list from its cursor, the cursors
// before it and its number.
type pageHref func(cursor string, prev []string, n int) string

// pageQuery sets a page's cursor, prev and page parameters in v.
func pageQuery(v url.Values, cursor string, prev []string, n int) {
	if cursor == "" {
		return
	}
	v.Set("cursor", cursor)
	if len(prev) > 0 {
		v.Set("prev", strings.Join(prev, ","))
	}
	v.Set("page", strconv.Itoa(n))
}

// newPager lays out the navigation of the page read from cursor, whose query is q,
// given the cursor of the next page ("" after the last).
func newPager(q url.Values, cursor, next string, href pageHref, oldestFirst bool) *pager {
	var prev []string
	if cursor != "" {
		for _, c := range strings.Split(q.Get("prev"), ",") {
			if c != "" {
				prev = append(prev, c)
			}
		}
		// The latest ones: the page before this one is the last (a crafted list
		// longer than the dashboard makes loses its earliest, as a long walk does).
		prev = prev[max(len(prev)-maxPrevCursors, 0):]
	}
	n := 1
	if cursor != "" {
		n = len(prev) + 2
		if given, err := strconv.Atoi(q.Get("page")); err == nil && given > n && given < 1<<30 {
			n = given
		}
	}
	p := &pager{PrevLabel: "newer", NextLabel: "older", Self: href(cursor, prev, n)}
	if oldestFirst {
		p.PrevLabel, p.NextLabel = p.NextLabel, p.PrevLabel
	}
	if n == 1 && next == "" {
		return p // one page: nothing to navigate
	}
	first := n - len(prev) // the number of prev[0]
	p.Pages = append(p.Pages, pageLink{N: 1, Href: href("", nil, 1), Current: n == 1})
	if first > 2 {
		p.Pages = append(p.Pages, pageLink{Gap: true})
	}
	for i, c := range prev {
		p.Pages = append(p.Pages, pageLink{N: first + i, Href: href(c, prev[:i], first+i)})
	}
	if n > 1 {
		p.Pages = append(p.Pages, pageLink{N: n, Current: true})
	}
	switch {
	case n == 2:
		p.PrevHref = href("", nil, 1)
	case len(prev) > 0:
		last := len(prev) - 1
		p.PrevHref = href(prev[last], prev[:last], n-1)
	}
	if next != "" {
		after := append(prev[:len(prev):len(prev)], cursor)
		if cursor == "" {
			after = nil
		}
		if len(after) > maxPrevCursors {
			after = after[len(after)-maxPrevCursors:]
		}
		p.NextHref = href(next, after, n+1)
	}
	return p
}
