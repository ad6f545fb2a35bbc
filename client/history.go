package client

import (
	"context"
	"net/url"
	"time"

	"github.com/jobrun/jobrun"
)

// History returns the per-minute activity of queue, or of every queue for "",
// from since's minute on, oldest first, as Runner.History does in the application
// (GET /api/history): a point per queue and minute that had activity, which the
// application's runner keeps in its file for 7 days; a zero since returns all of
// it. A bad queue name is the runner's error, wrapping jobrun.ErrInvalid.
func (c *Client) History(ctx context.Context, queue string, since time.Time) ([]jobrun.HistoryPoint, error) {
	q := url.Values{}
	set(q, "queue", queue)
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	var out struct {
		Points []jobrun.HistoryPoint `json:"points"`
	}
	if err := c.get(ctx, "api/history", q, &out); err != nil {
		return nil, err
	}
	return out.Points, nil
}
