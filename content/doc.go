// Package content renders a campaign's notification for one user: the
// translation for the user's locale, and the Liquid placeholders of its
// title, body, subtitle and data values over the user's attributes.
//
// Templates are Liquid (github.com/osteele/liquid), the syntax marketing
// tools use, restricted to what a push needs and cannot abuse: output
// ({{ first_name | default: "there" }}), if/elsif/else, unless, case/when,
// comment, raw, and {% skip %} (or {% abort %}) to leave a user out. There
// is no loop, no assignment, no include (nothing can read a file, the
// network or the environment), and only filters whose output grows at most
// by their arguments, so rendering takes time and memory in proportion to
// the template and the user's attributes. Compile checks all of that when
// a campaign arrives; Render then only renders what Compile accepted.
package content
