// Package didyoumean finds the name a user most likely meant to type: a
// config key, a section, a template filter.
package didyoumean

import "strings"

// Nearest returns the candidate closest to word, or "" when none is close
// enough to be a likely typo. Case and the separators _ - . and space are
// ignored; names of 6 characters or more allow two mistakes, shorter ones
// one; failing that, a name that contains word or is contained in it
// ("bundle" for bundle_id) is taken, the shortest first.
func Nearest(word string, candidates []string) string {
	k := normalize(word)
	if len(k) == 0 || len(k) > 64 {
		return ""
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		n := normalize(c)
		if n == k {
			return c
		}
		limit := 1
		if len(n) >= 6 {
			limit = 2
		}
		if d := Distance(k, n); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	if len(k) >= 4 {
		for _, c := range candidates {
			n := normalize(c)
			if strings.Contains(n, k) || strings.Contains(k, n) {
				if best == "" || len(c) < len(best) {
					best = c
				}
			}
		}
	}
	return best
}

// normalize drops the separators people vary in names.
func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ', '.':
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// Distance is the Levenshtein edit distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
