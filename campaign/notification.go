package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pushd/pushd/providers"
)

// Content is what staff wrote for a campaign, frozen into the run when it
// starts so that every instance sends the same thing.
type Content struct {
	Title      string                     `json:"title"`
	Body       string                     `json:"body"`
	Data       map[string]json.RawMessage `json:"data,omitempty"`
	Badge      *int                       `json:"badge,omitempty"`
	Sound      string                     `json:"sound,omitempty"`
	CollapseID string                     `json:"collapse_id,omitempty"`
}

// ParseData decodes the campaigns.data column: empty, or a JSON object.
// Its error is worded for the campaign's status_reason.
func ParseData(s string) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace([]byte(s))) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("data must be a JSON object like {\"key\": \"value\"}, not a JSON %s", typeErr.Value)
		}
		return nil, fmt.Errorf("data is not valid JSON: %v", err)
	}
	if m == nil {
		return nil, errors.New("data must be a JSON object like {\"key\": \"value\"}, not null")
	}
	if dec.More() {
		return nil, errors.New("data has text after the JSON object")
	}
	return m, nil
}

// Notification returns what a provider renders for this content.
func (c Content) Notification() providers.Notification {
	return providers.Notification{Title: c.Title, Body: c.Body, Data: c.Data, Badge: c.Badge, Sound: c.Sound, CollapseID: c.CollapseID}
}
