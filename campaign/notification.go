package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

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
