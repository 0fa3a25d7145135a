package contract

// Product is a catalog entry with its current stock.
type Product struct {
	ID         int64  `json:"id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Stock      int64  `json:"stock"`
}

// ProductList is the body of GET /products (and of the order service's
// GET /catalog, which proxies it).
type ProductList struct {
	Products []Product `json:"products"`
}

// NewProduct is the body of POST /products.
type NewProduct struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Stock      int64  `json:"stock"`
}

// Restock is the body of POST /products/{id}/restock.
type Restock struct {
	Quantity int64 `json:"quantity"`
}
