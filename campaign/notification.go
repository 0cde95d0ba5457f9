package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// dataExample is a correct data value, shown with every data error.
const dataExample = `{"screen": "sale", "id": 42}`

// ParseData decodes the campaigns.data column: empty, or a JSON object.
// Its error is worded for the campaign's status_reason: what is wrong,
// where (the character's position and the text around it), and an example.
func ParseData(s string) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace([]byte(s))) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return nil, fmt.Errorf("data must be a JSON object of names and values like %s, not a JSON %s", dataExample, typeErr.Value)
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("data is not valid JSON at character %d (%s): %s; a correct example: %s",
				runeOffset(s, syntax.Offset), around(s, syntax.Offset), syntaxWords(syntax.Error()), dataExample)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("data is not valid JSON: it ends too early, a closing } or \" is missing; a correct example: %s", dataExample)
		}
		return nil, fmt.Errorf("data is not valid JSON: %v; a correct example: %s", err, dataExample)
	}
	if m == nil {
		return nil, fmt.Errorf("data must be a JSON object like %s, not null: set the column to NULL (no quotes) for no data", dataExample)
	}
	if dec.More() {
		return nil, fmt.Errorf("data has text after the JSON object, at character %d (%s): remove it", runeOffset(s, dec.InputOffset())+1,
			around(s, dec.InputOffset()+1))
	}
	return m, nil
}

// runeOffset converts a byte offset into s to a character count.
func runeOffset(s string, off int64) int64 {
	return int64(utf8.RuneCountInString(s[:min(int(off), len(s))]))
}

// around quotes the text around byte offset off (1-based, as the JSON
// decoder counts), up to 16 characters each side, with the place marked
// by »: enough to find it in a long value.
func around(s string, off int64) string {
	i := min(max(int(off)-1, 0), len(s))
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	lo, hi := i, i
	for n := 0; n < 16 && lo > 0; n++ {
		_, size := utf8.DecodeLastRuneInString(s[:lo])
		lo -= size
	}
	for n := 0; n < 16 && hi < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[hi:])
		hi += size
	}
	return fmt.Sprintf("%q", s[lo:i]+"»"+s[i:hi])
}

// syntaxWords turns the JSON decoder's words into a marketer's.
func syntaxWords(msg string) string {
	switch {
	case strings.Contains(msg, "looking for beginning of object key string"):
		return "every name must be in double quotes, like \"screen\""
	case strings.Contains(msg, "after object key:value pair"):
		return "a comma or a closing } must follow each value"
	case strings.Contains(msg, "after object key"):
		return "a colon must follow each name"
	case strings.Contains(msg, "looking for beginning of value"):
		return "a value must be text in double quotes, a number, true, false, null, an object or a list"
	case strings.Contains(msg, "in string literal"):
		return "a text value contains a line break or tab: write \\n or \\t instead"
	case strings.Contains(msg, "in string escape code"):
		return "a backslash in a text must be doubled (\\\\) or start an escape such as \\n"
	}
	return msg
}
