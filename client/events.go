package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// Send sends ev, as Runner.Send does in the application (POST /api/events): the
// event is stored with one run of every function registered on its name, and Send
// returns it, its Runs the runs' IDs. ev.Data is encoded as JSON here and must be
// a JSON object (nil sends {}). An empty name is refused before any request, with
// jobrun.ErrInvalid.
func (c *Client) Send(ctx context.Context, ev jobrun.Event) (*jobrun.EventInfo, error) {
	if ev.Name == "" {
		return nil, fmt.Errorf("send: %w: empty event name", jobrun.ErrInvalid)
	}
	req := wire.Event{Name: ev.Name, ID: ev.ID}
	if ev.Data != nil {
		var err error
		if req.Data, err = json.Marshal(ev.Data); err != nil {
			return nil, fmt.Errorf("send %s: %w: encode data: %w", ev.Name, jobrun.ErrInvalid, err)
		}
	}
	var info jobrun.EventInfo
	if err := c.postJSON(ctx, "api/events", &req, &info); err != nil {
		return nil, err
	}
	info.Data = compactJSON(info.Data)
	return &info, nil
}

// Events returns one page of the events f selects, newest first unless f.Oldest,
// as Runner.Events does (GET /api/events).
func (c *Client) Events(ctx context.Context, f jobrun.EventFilter) (*jobrun.EventPage, error) {
	q := pageQuery(f.Oldest, f.Limit, f.Cursor)
	set(q, "name", f.Name)
	var page struct {
		Events []*jobrun.EventInfo `json:"events"`
		Next   string              `json:"next"`
	}
	if err := c.get(ctx, "api/events", q, &page); err != nil {
		return nil, err
	}
	for _, ev := range page.Events {
		ev.Data = compactJSON(ev.Data)
	}
	return &jobrun.EventPage{Events: page.Events, Next: page.Next}, nil
}

// GetEvent returns the event of Seq seq (GET /api/events/{seq}); an error wrapping
// jobrun.ErrNotFound if there is none.
func (c *Client) GetEvent(ctx context.Context, seq uint64) (*jobrun.EventInfo, error) {
	if seq == 0 {
		return nil, errNoID("get event")
	}
	var ev jobrun.EventInfo
	if err := c.get(ctx, "api/events/"+strconv.FormatUint(seq, 10), nil, &ev); err != nil {
		return nil, err
	}
	ev.Data = compactJSON(ev.Data)
	return &ev, nil
}
