package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/problem"
)

// codeSKUTaken is the problem code of POST /products for an existing SKU.
const codeSKUTaken = "sku_taken"

// Seed creates each product through POST {productURL}/products with the admin
// token and returns the catalog entries in the order given. A SKU that already
// exists (409 sku_taken) is looked up and returned as it is, stock included,
// so seeding again after a restart changes nothing.
func Seed(ctx context.Context, productURL, adminToken string, products []contract.NewProduct) ([]contract.Product, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	seeded := make([]contract.Product, 0, len(products))
	var existing map[string]contract.Product // fetched on the first conflict
	for _, np := range products {
		p, taken, err := createProduct(ctx, client, productURL, adminToken, np)
		if err != nil {
			return nil, err
		}
		if taken {
			if existing == nil {
				if existing, err = listProducts(ctx, client, productURL); err != nil {
					return nil, err
				}
			}
			var ok bool
			if p, ok = existing[np.SKU]; !ok {
				return nil, fmt.Errorf("seed %s: taken, but not in GET /products", np.SKU)
			}
		}
		seeded = append(seeded, p)
	}
	return seeded, nil
}

func createProduct(ctx context.Context, client *http.Client, baseURL, adminToken string, np contract.NewProduct) (p contract.Product, taken bool, err error) {
	body, err := json.Marshal(np)
	if err != nil {
		return p, false, fmt.Errorf("encode product %s: %w", np.SKU, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/products", bytes.NewReader(body))
	if err != nil {
		return p, false, fmt.Errorf("seed %s: %w", np.SKU, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return p, false, fmt.Errorf("seed %s: %w", np.SKU, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return p, false, fmt.Errorf("seed %s: read answer: %w", np.SKU, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		if err := json.Unmarshal(raw, &p); err != nil {
			return p, false, fmt.Errorf("seed %s: decode product: %w", np.SKU, err)
		}
		return p, false, nil
	case http.StatusConflict:
		var prob problem.Problem
		if json.Unmarshal(raw, &prob) == nil && prob.Code == codeSKUTaken {
			return p, true, nil
		}
	}
	return p, false, fmt.Errorf("seed %s: POST /products answered %s: %s", np.SKU, resp.Status, bytes.TrimSpace(raw))
}

func listProducts(ctx context.Context, client *http.Client, baseURL string) (map[string]contract.Product, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/products", nil)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("list products: GET /products answered %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	var list contract.ProductList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("list products: decode: %w", err)
	}
	bySKU := make(map[string]contract.Product, len(list.Products))
	for _, p := range list.Products {
		bySKU[p.SKU] = p
	}
	return bySKU, nil
}
