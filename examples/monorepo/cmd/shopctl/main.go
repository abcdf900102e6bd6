// Command shopctl is the shop's command-line client, for every desktop.
package main

import (
	"fmt"

	"example.com/shop/internal/shop"
)

func main() {
	fmt.Println(shop.Banner("shopctl"))
}
