package pushsim

import (
	"encoding/json"
	"unicode/utf8"
)

// A small scanner over JSON that json.Valid has already accepted. It walks
// objects and arrays member by member without reflection or maps, which
// keeps the per-request path cheap and the handler goroutines' stacks
// shallow.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// unquote decodes a JSON string literal.
func unquote(lit []byte) string {
	inner := lit[1 : len(lit)-1]
	simple := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return string(inner) // unreachable for valid JSON
	}
	return s
}

// members calls fn with each key and raw value of the object obj, in
// order. obj must start with '{'.
func members(obj []byte, fn func(key string, val []byte) error) error {
	i := skipSpace(obj, 0)
	i = skipSpace(obj, i+1) // '{'
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		end := skipString(obj, i)
		key := unquote(obj[i:end])
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // ':'
		vend := skipValue(obj, i)
		if err := fn(key, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		i = skipSpace(obj, i+1) // ','
	}
	return nil
}

// elements calls fn with each raw element of the array arr, which must
// start with '['.
func elements(arr []byte, fn func(i int, val []byte) error) error {
	i := skipSpace(arr, 0)
	i = skipSpace(arr, i+1) // '['
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for n := 0; i < len(arr); n++ {
		end := skipValue(arr, i)
		if err := fn(n, arr[i:end]); err != nil {
			return err
		}
		i = skipSpace(arr, end)
		if i >= len(arr) || arr[i] == ']' {
			return nil
		}
		i = skipSpace(arr, i+1) // ','
	}
	return nil
}

// trimJSON strips the whitespace around a JSON text.
func trimJSON(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}
