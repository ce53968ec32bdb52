// https_client fetches a URL over HTTPS (HTTP/2 with -h2, else HTTP/1.1),
// trusting any certificate, and prints the protocol, status and body.
// -wait delays the first request; -stdin-go holds it until a line arrives on
// stdin (a test sends it once a tracer has attached). Stdlib only, and Go 1.15
// compatible.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	url := flag.String("url", "https://127.0.0.1:8443/", "URL to fetch")
	h2 := flag.Bool("h2", false, "negotiate HTTP/2")
	post := flag.String("post", "", "POST this body instead of GET")
	count := flag.Int("n", 1, "requests to send on one connection")
	keylog := flag.String("keylog", "", "append TLS secrets to this file")
	wait := flag.Duration("wait", 0, "sleep this long first (lets a tracer attach)")
	stdinGo := flag.Bool("stdin-go", false, "read a line from stdin first")
	quiet := flag.Bool("q", false, "print nothing per response")
	flag.Parse()
	time.Sleep(*wait)
	if *stdinGo {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatal(err)
		}
	}

	cfg := &tls.Config{InsecureSkipVerify: true}
	if *keylog != "" {
		f, err := os.OpenFile(*keylog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			log.Fatal(err)
		}
		cfg.KeyLogWriter = f
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: *h2}
	if !*h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: tr}
	start := time.Now()
	for i := 0; i < *count; i++ {
		var resp *http.Response
		var err error
		if *post != "" {
			resp, err = client.Post(*url, "text/plain", strings.NewReader(*post))
		} else {
			resp, err = client.Get(*url)
		}
		if err != nil {
			log.Fatal(err)
		}
		body, err := ioutil.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		if !*quiet {
			fmt.Printf("%s %d %s", resp.Proto, resp.StatusCode, body)
		}
	}
	// The request loop's own wall time, for benchmarks/go_tls_overhead.py.
	fmt.Fprintf(os.Stderr, "elapsed_ns %d\n", time.Since(start).Nanoseconds())
}
