// A tiny keep-alive HTTP/1.1 server for the serverless bench's test image (issue 13): busybox
// httpd closes every connection, so a hot-path figure through it measures connection setup, not
// the proxy. This one keeps connections open, answers every GET/HEAD/POST with one fixed body
// (Content-Length framing), and uses only the standard library's net, bufio and strconv, so the
// static binary (CGO_ENABLED=0, -s -w) is ~2 MB: the size of the bench's cold-start app.
//
// Usage: keepalive -p 127.0.0.1:PORT [-b BODY]      (the same -p as busybox httpd)
package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strconv"
)

const maxHeaderBytes = 16 << 10

func main() {
	addr := "127.0.0.1:8080"
	body := []byte("ok\n")
	args := os.Args[1:]
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "-p":
			addr = args[i+1]
		case "-b":
			body = []byte(args[i+1])
		default:
			fail("unknown option " + args[i] + " (usage: keepalive -p HOST:PORT [-b BODY])")
		}
	}
	if len(args)%2 != 0 {
		fail("usage: keepalive -p HOST:PORT [-b BODY]")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err.Error())
	}
	os.Stderr.WriteString("keepalive listening on " + addr + "\n")
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c, head, body)
	}
}

func fail(msg string) {
	os.Stderr.WriteString("keepalive: " + msg + "\n")
	os.Exit(2)
}

// serve answers requests on one connection until the client closes it, asks to close it, or
// sends something this server does not frame (chunked request bodies, oversized headers).
func serve(c net.Conn, head, body []byte) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	for {
		keep, isHead, st := readRequest(r)
		if st == gone {
			return
		}
		if st == bad {
			w.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			w.Flush()
			return
		}
		w.Write(head)
		if !keep {
			w.WriteString("Connection: close\r\n")
		}
		w.WriteString("\r\n")
		if !isHead {
			w.Write(body)
		}
		// flush only when no further (pipelined) request is already buffered
		if r.Buffered() == 0 || !keep {
			if w.Flush() != nil {
				return
			}
		}
		if !keep {
			return
		}
	}
}

type status int

const (
	good status = iota
	gone        // the client closed the connection (or it broke) before a whole request line
	bad         // malformed, or framed in a way this server does not read
)

// readRequest reads one request line and its headers, and discards a Content-Length body.
func readRequest(r *bufio.Reader) (keep, isHead bool, st status) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 {
			return false, false, gone
		}
		return false, false, bad
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return false, false, bad
	}
	isHead = string(line[:sp]) == "HEAD"
	keep = bytes.Contains(line, []byte("HTTP/1.1"))
	length := 0
	total := len(line)
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return false, false, bad
		}
		total += len(h)
		if total > maxHeaderBytes {
			return false, false, bad
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return false, false, bad
		}
		name := bytes.ToLower(h[:colon])
		value := bytes.TrimSpace(h[colon+1:])
		switch string(name) {
		case "connection":
			v := bytes.ToLower(value)
			if bytes.Contains(v, []byte("close")) {
				keep = false
			} else if bytes.Contains(v, []byte("keep-alive")) {
				keep = true
			}
		case "content-length":
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return false, false, bad
			}
			length = n
		case "transfer-encoding":
			return false, false, bad
		}
	}
	if length > 0 {
		if _, err := r.Discard(length); err != nil {
			return false, false, bad
		}
	}
	return keep, isHead, good
}
