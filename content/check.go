package content

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/osteele/liquid/render"
	"github.com/pushd/pushd/internal/didyoumean"
)

// blocks and tags are the Liquid tags a template may use. Loops, assign,
// capture and cycle are left out: with them a few lines can run for hours
// or build gigabytes (a doubling assign).
var (
	blocks = []string{"if", "elsif", "else", "unless", "case", "when", "comment", "raw"}
	tags   = []string{"skip", "abort"}
)

// filters are the Liquid filters a template may use: each one's output is
// at most its input plus its arguments. replace, escape, url_encode, join
// and the like can multiply their input and are left out.
var filters = []string{
	"abs", "append", "capitalize", "ceil", "date", "default", "divided_by", "downcase", "first", "floor",
	"last", "lstrip", "minus", "modulo", "plus", "prepend", "remove", "remove_first", "replace_first",
	"round", "rstrip", "size", "slice", "split", "strip", "strip_html", "strip_newlines", "times",
	"truncate", "truncatewords", "upcase",
}

// maxFilters bounds the filters of one template. Without loops each runs
// at most once per rendering, but a chain of appends of a long attribute
// copies it again at each step: the bound keeps that cost small.
const maxFilters = 64

// check walks a compiled template and rejects any tag or filter outside
// the lists above, or more than maxFilters filters.
func check(root render.Node) error {
	var c checker
	if err := c.node(root); err != nil {
		return err
	}
	if c.filters > maxFilters {
		return fmt.Errorf("the template uses %d filters; at most %d are allowed", c.filters, maxFilters)
	}
	return nil
}

type checker struct{ filters int }

func (k *checker) node(n render.Node) error {
	switch n := n.(type) {
	case *render.SeqNode:
		for _, c := range n.Children {
			if err := k.node(c); err != nil {
				return err
			}
		}
	case *render.BlockNode:
		if !slices.Contains(blocks, n.Name) {
			return fmt.Errorf("{%% %s %%} is not available in push templates (loops and assignments are not); use if, unless or case", n.Name)
		}
		if err := k.expr(n.Args); err != nil {
			return err
		}
		for _, c := range n.Body {
			if err := k.node(c); err != nil {
				return err
			}
		}
		for _, c := range n.Clauses {
			if err := k.node(c); err != nil {
				return err
			}
		}
	case *render.TagNode:
		if !slices.Contains(tags, n.Name) {
			return fmt.Errorf("{%% %s %%} is not available in push templates; use if, unless, case or skip", n.Name)
		}
	case *render.ObjectNode:
		return k.expr(n.Args)
	case *render.TextNode:
		if strings.Contains(n.Source, "{{") {
			return fmt.Errorf("a {{ is not closed by }} in %q", n.Source)
		}
		if strings.Contains(n.Source, "{%") {
			return fmt.Errorf("a {%% is not closed by %%} in %q", n.Source)
		}
	case *render.RawNode, *render.TrimNode:
	default:
		return fmt.Errorf("the template uses a construct pushd does not know (%T)", n)
	}
	return nil
}

// expr rejects a filter outside the list in an expression's source, and
// counts them: each name follows a | outside quotes.
func (k *checker) expr(expr string) error {
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '"', '\'':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return fmt.Errorf("a text in quotes is not closed in {{ %s }}", expr)
			}
			i += end + 1
		case '.':
			// A range literal, (1..300000000): first, last and slice would
			// build it whole.
			if i+1 < len(expr) && expr[i+1] == '.' {
				return errors.New("ranges such as (1..5) are not available in push templates")
			}
		case '|':
			j := i + 1
			for j < len(expr) && (expr[j] == ' ' || expr[j] == '\t' || expr[j] == '\n' || expr[j] == '\r') {
				j++
			}
			end := j
			for end < len(expr) && (isLetter(expr[end]) || end > j && (expr[end] == '-' || expr[end] >= '0' && expr[end] <= '9')) {
				end++
			}
			if name := expr[j:end]; !slices.Contains(filters, name) {
				if near := didyoumean.Nearest(name, filters); near != "" {
					return fmt.Errorf("the filter %q is not available in push templates: did you mean %q?", name, near)
				}
				return fmt.Errorf("the filter %q is not available in push templates; use one of %s", name, strings.Join(filters, ", "))
			}
			k.filters++
			i = end - 1
		}
	}
	return nil
}

func isLetter(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
