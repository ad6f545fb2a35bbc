package dashboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// staticFile is an embedded asset with its validator.
type staticFile struct {
	body        []byte
	etag        string
	contentType string
}

// static holds the files under assets/static, by name.
var static = loadStatic()

func loadStatic() map[string]*staticFile {
	out := map[string]*staticFile{}
	entries, err := fs.ReadDir(assets, "assets/static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(assets, "assets/static/"+e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = &staticFile{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
			contentType: mime.TypeByExtension(path.Ext(e.Name()))}
	}
	return out
}

// serveStatic serves an embedded asset. Browsers revalidate it on each use (no-cache)
// and get 304 Not Modified while it is unchanged, so a new version shows at once.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	f := static[r.PathValue("file")]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	if f.contentType != "" {
		h.Set("Content-Type", f.contentType)
	}
	http.ServeContent(w, r, r.PathValue("file"), time.Time{}, bytes.NewReader(f.body))
}
