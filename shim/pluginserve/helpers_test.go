package pluginserve

import (
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// connInfoWithKnock is go-plugin's ConnInfo with its field 4, as the host's client sends it.
type connInfoWithKnock struct {
	ServiceID uint32 `protobuf:"varint,1,opt,name=service_id,json=serviceId,proto3"`
	Network   string `protobuf:"bytes,2,opt,name=network,proto3"`
	Address   string `protobuf:"bytes,3,opt,name=address,proto3"`
	Knock     *knock `protobuf:"bytes,4,opt,name=knock,proto3"`
}

func (c *connInfoWithKnock) Reset()         { *c = connInfoWithKnock{} }
func (c *connInfoWithKnock) String() string { return fmt.Sprint(c.ServiceID) }
func (*connInfoWithKnock) ProtoMessage()    {}

type knock struct {
	Knock bool `protobuf:"varint,1,opt,name=knock,proto3"`
}

func (k *knock) Reset()         { *k = knock{} }
func (k *knock) String() string { return fmt.Sprint(k.Knock) }
func (*knock) ProtoMessage()    {}
