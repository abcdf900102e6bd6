package systemd

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parse reads a unit in the form Render writes: comment lines starting
// with "#", blank lines, "[Section]" headers (each once) and Name=Value
// lines, every line ended by a newline. It is stricter than systemd: a
// line systemd would read differently from how it looks (a continuation,
// surrounding white space, a control character, a ";" comment) is an
// error, so Parse(Render(t, o)) equal to Directives(t, o) proves that no
// value added or changed a line.
func Parse(b []byte) ([]Directive, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("unit is not valid UTF-8")
	}
	s := string(b)
	if s == "" {
		return nil, nil
	}
	if !strings.HasSuffix(s, "\n") {
		return nil, errors.New("unit does not end with a newline")
	}
	var (
		ds      []Directive
		section string
		seen    = map[string]bool{}
	)
	for i, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		n := i + 1
		if err := checkText("line", line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if !sectionRe.MatchString(section) {
				return nil, fmt.Errorf("line %d: invalid section name %q", n, section)
			}
			if seen[section] {
				return nil, fmt.Errorf("line %d: section [%s] appears twice", n, section)
			}
			seen[section] = true
		default:
			name, value, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: %q is not Name=Value", n, line)
			}
			if section == "" {
				return nil, fmt.Errorf("line %d: %s= is outside a section", n, name)
			}
			d := Directive{Section: section, Name: name, Value: value}
			if err := checkDirective(d); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			ds = append(ds, d)
		}
	}
	return ds, nil
}
