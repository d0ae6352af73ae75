module github.com/hasup/hasup

go 1.26
