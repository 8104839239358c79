package proxy

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON line per request, in the shape slog's
// JSONHandler gives (time, level, msg, then the fields), with a single
// Write per line and no allocation in the common case. It is a hand-written
// encoder because the access log is on every request's path.
type accessLog struct {
	w    io.Writer
	mu   sync.Mutex
	pool sync.Pool
}

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{w: w, pool: sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}}
}

func (l *accessLog) log(r *http.Request, ex *exchange, svc *service, host string, start time.Time, elapsed time.Duration) {
	bp := l.pool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = start.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","level":"INFO","msg":"request","service":`...)
	service, target := "", ""
	if svc != nil {
		service, target = svc.req.Service, svc.req.Target
	}
	b = appendJSONString(b, service)
	b = append(b, `,"target":`...)
	b = appendJSONString(b, target)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, host)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.Path)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, r.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ex.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, ex.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(elapsed.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"remote_addr":`...)
	b = appendJSONString(b, r.RemoteAddr)
	if ex.proxyErr != nil {
		b = append(b, `,"err":`...)
		b = appendJSONString(b, ex.proxyErr.Error())
	}
	b = append(b, "}\n"...)
	l.mu.Lock()
	l.w.Write(b)
	l.mu.Unlock()
	if cap(b) <= 64<<10 {
		*bp = b
		l.pool.Put(bp)
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
