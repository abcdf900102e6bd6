package systemd

import (
	"fmt"
	"strings"
)

// The decoders below read values the way systemd 252 documents it
// (systemd.syntax(7) "Quoting", systemd.service(5) "Command lines",
// systemd.exec(5) EnvironmentFile=). They accept more than the renderer
// writes, and refuse anything whose meaning would depend on the running
// system (a specifier, a variable), so a round trip through them shows
// that the quoting is right. TestSystemdReadsUnits checks the same against
// systemd itself.

// unquoteExec splits an ExecStart= value into the argv systemd runs.
func unquoteExec(v string) ([]string, error) {
	v, err := expandSpecifiers(v)
	if err != nil {
		return nil, err
	}
	words, err := splitWords(v)
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		if words[i], err = expandDollars(w); err != nil {
			return nil, err
		}
	}
	return words, nil
}

// unquoteEnvironment reads an Environment= value holding one assignment.
func unquoteEnvironment(v string) (name, value string, err error) {
	v, err = expandSpecifiers(v)
	if err != nil {
		return "", "", err
	}
	words, err := splitWords(v)
	if err != nil {
		return "", "", err
	}
	if len(words) != 1 {
		return "", "", fmt.Errorf("%d assignments, want 1", len(words))
	}
	name, value, ok := strings.Cut(words[0], "=")
	if !ok {
		return "", "", fmt.Errorf("%q is not an assignment", words[0])
	}
	return name, value, nil
}

// expandSpecifiers resolves %%; any other specifier is an error.
func expandSpecifiers(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 >= len(v) || v[i+1] != '%' {
			return "", fmt.Errorf("specifier in %q", v)
		}
		b.WriteByte('%')
		i++
	}
	return b.String(), nil
}

// expandDollars resolves $$; any other $ would be a variable.
func expandDollars(w string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' {
			b.WriteByte(w[i])
			continue
		}
		if i+1 >= len(w) || w[i+1] != '$' {
			return "", fmt.Errorf("variable in %q", w)
		}
		b.WriteByte('$')
		i++
	}
	return b.String(), nil
}

// splitWords is extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE,
// for the escapes \\ \" \' only.
func splitWords(v string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote byte
	)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			if i+1 >= len(v) {
				return nil, fmt.Errorf("trailing backslash in %q", v)
			}
			i++
			switch v[i] {
			case '\\', '"', '\'':
				cur.WriteByte(v[i])
			default:
				return nil, fmt.Errorf("escape \\%c in %q", v[i], v)
			}
			in = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", v)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// decodeEnvFile reads an environment file (one line per variable).
func decodeEnvFile(s string) (map[string]string, error) {
	env := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		name, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not an assignment", line)
		}
		raw = strings.TrimLeft(raw, " \t")
		var b strings.Builder
		switch {
		case strings.HasPrefix(raw, `"`):
			i := 1
			for ; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' && i+1 < len(raw) && strings.IndexByte("\"\\`$", raw[i+1]) >= 0 {
					i++
				}
				b.WriteByte(raw[i])
			}
			if i >= len(raw) || strings.TrimSpace(raw[i+1:]) != "" {
				return nil, fmt.Errorf("bad double-quoted value in %q", line)
			}
		case strings.HasPrefix(raw, `'`):
			end := strings.IndexByte(raw[1:], '\'')
			if end < 0 || strings.TrimSpace(raw[end+2:]) != "" {
				return nil, fmt.Errorf("bad single-quoted value in %q", line)
			}
			b.WriteString(raw[1 : end+1])
		default:
			for i := 0; i < len(raw); i++ {
				if raw[i] == '\\' {
					if i+1 >= len(raw) {
						return nil, fmt.Errorf("continuation in %q", line)
					}
					i++
				}
				b.WriteByte(raw[i])
			}
		}
		v := b.String()
		if !strings.HasPrefix(raw, `"`) && !strings.HasPrefix(raw, `'`) {
			v = strings.TrimRight(v, " \t\r")
		}
		env[name] = v
	}
	return env, nil
}

// decodeDumpArgv reads a "Command Line:" of systemd's --test dump: words
// separated by spaces, bare or in double quotes with \-escapes.
func decodeDumpArgv(s string) ([]string, error) {
	var words []string
	for s != "" {
		if s[0] != '"' {
			w, rest, _ := strings.Cut(s, " ")
			words, s = append(words, w), rest
			continue
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated quote in %q", s)
		}
		words = append(words, b.String())
		s = strings.TrimPrefix(s[i+1:], " ")
	}
	return words, nil
}
