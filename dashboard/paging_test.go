package dashboard

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
)

// listed returns the IDs of the rows of a list page, in order.
func listed(body string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<tr data-id="(\d+)"`).FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// link returns the target of the link with the given id on a page, "" if none.
func link(body, id string) string {
	m := regexp.MustCompile(`<a href="([^"]*)" id="` + id + `"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestPagingRoundTrip follows "older" to the last page of a queue's jobs and
// "newer" back to the first, and checks that each page comes back as it was, with
// its number and the numbered links to the pages before it.
func TestPagingRoundTrip(t *testing.T) {
	f := openFixture(t)
	h := New(f.r)
	batch := make([]jobrun.Args, 130)
	for i := range batch {
		batch[i] = okArgs{To: "bulk@example.com"}
	}
	if _, err := f.r.EnqueueMany(t.Context(), batch, jobrun.Queue("idle")); err != nil {
		t.Fatal(err)
	}
	target := "/queues/idle"
	var pages [][]string
	for n := 1; ; n++ {
		body := get(t, h, target, http.StatusOK)
		ids := listed(body)
		pages = append(pages, ids)
		if n > 1 {
			contains(t, "page "+itoa(n), body, `<span class="page" aria-current="page">`+itoa(n)+`</span>`, `id="first-page">1</a>`)
			for k := 2; k < n; k++ {
				contains(t, "page "+itoa(n), body, `data-page="`+itoa(k)+`">`+itoa(k)+`</a>`)
			}
		}
		next := link(body, "next-page")
		if next == "" {
			break
		}
		if n > 5 {
			t.Fatal("more pages than 130 jobs fill")
		}
		target = "/queues/" + strings.TrimPrefix(next, "queues/")
	}
	if len(pages) != 3 || len(pages[0]) != 50 || len(pages[1]) != 50 || len(pages[2]) != 30 {
		t.Fatalf("pages of %v jobs, want 50, 50, 30", lens(pages))
	}
	all := slices.Concat(pages...)
	slices.Sort(all)
	if len(slices.Compact(all)) != 130 {
		t.Errorf("the pages list %d distinct jobs, want 130", len(slices.Compact(all)))
	}
	// Back, by "newer": each page as it was.
	for n := len(pages); n > 1; n-- {
		body := get(t, h, target, http.StatusOK)
		if got := listed(body); !slices.Equal(got, pages[n-1]) {
			t.Fatalf("page %d read again lists other jobs", n)
		}
		prev := link(body, "prev-page")
		if prev == "" {
			t.Fatalf("page %d has no newer link", n)
		}
		target = "/" + prev
	}
	body := get(t, h, target, http.StatusOK)
	if !slices.Equal(listed(body), pages[0]) || link(body, "prev-page") != "" {
		t.Errorf("the first page reached by newer links differs, or has a newer link")
	}
}

func lens(pages [][]string) []int {
	var out []int
	for _, p := range pages {
		out = append(out, len(p))
	}
	return out
}

// TestPager checks the links of a page deep in a list, past the cursors its URL
// keeps: the earliest are dropped, shown as a gap after page 1.
func TestPager(t *testing.T) {
	href := func(cursor string, prev []string, n int) string {
		v := url.Values{}
		pageQuery(v, cursor, prev, n)
		return "jobs?" + v.Encode()
	}
	// Page 1 with more: a link to page 2 with no prev.
	p := newPager(url.Values{}, "", "c1", href, false)
	if p.NextHref != "jobs?cursor=c1&page=2" || p.PrevHref != "" || len(p.Pages) != 1 || !p.Pages[0].Current {
		t.Errorf("first page: %+v", p)
	}
	// One page only: no navigation.
	if p := newPager(url.Values{}, "", "", href, false); p.Pages != nil || p.NextHref != "" {
		t.Errorf("a single page: %+v", p)
	}
	// Page 2: newer is page 1, older carries its cursor.
	p = newPager(url.Values{"page": {"2"}}, "c1", "c2", href, false)
	if p.PrevHref != "jobs?" || p.NextHref != "jobs?cursor=c2&page=3&prev=c1" {
		t.Errorf("second page: prev %q, next %q", p.PrevHref, p.NextHref)
	}
	// Walk 30 pages: the URL keeps the latest maxPrevCursors cursors only.
	q := url.Values{}
	cursor := ""
	for n := 1; n < 30; n++ {
		p = newPager(q, cursor, "c"+itoa(n), href, false)
		u, err := url.Parse(p.NextHref)
		if err != nil {
			t.Fatal(err)
		}
		q, cursor = u.Query(), u.Query().Get("cursor")
	}
	p = newPager(q, cursor, "", href, false)
	if got := len(strings.Split(q.Get("prev"), ",")); got != maxPrevCursors {
		t.Errorf("page 30 keeps %d cursors, want %d", got, maxPrevCursors)
	}
	last := p.Pages[len(p.Pages)-1]
	if !last.Current || last.N != 30 || !p.Pages[1].Gap || p.Pages[2].N != 30-maxPrevCursors {
		t.Errorf("page 30's links: %+v", p.Pages)
	}
	if p.PrevHref == "" || !strings.Contains(p.PrevHref, "cursor=c28") || !strings.Contains(p.PrevHref, "page=29") {
		t.Errorf("page 30's newer link: %q", p.PrevHref)
	}
	// A crafted prev longer than the dashboard makes keeps its latest cursors: the
	// newer link is still the page before this one.
	long := make([]string, maxPrevCursors+5)
	for i := range long {
		long[i] = "p" + itoa(i)
	}
	p = newPager(url.Values{"prev": {strings.Join(long, ",")}}, "cur", "", href, false)
	if !strings.Contains(p.PrevHref, "cursor=p"+itoa(len(long)-1)+"&") {
		t.Errorf("a long prev: the newer link %q, want the cursor of the last one, p%d", p.PrevHref, len(long)-1)
	}
	// Oldest first, the words swap.
	if p := newPager(url.Values{}, "", "c1", href, true); p.NextLabel != "newer" || p.PrevLabel != "older" {
		t.Errorf("oldest first: %+v", p)
	}
}
