// Command api serves the shop's HTTP API.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"

	"example.com/shop/internal/shop"
)

func main() {
	listen := flag.String("listen", "", "address to serve on; empty prints the banner and exits")
	flag.Parse()
	fmt.Println(shop.Banner("api"))
	if *listen == "" {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, shop.Banner("api"))
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
