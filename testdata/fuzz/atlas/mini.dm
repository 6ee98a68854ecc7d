<AtlasSessionXml xmlns="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:z="http://schemas.microsoft.com/2003/10/Serialization/" z:Id="1" z:Type="Applications.SciencesAppsShared.GridAtlas.Persistence.AtlasSessionXml" z:Assembly="Applications.SciencesAppsShared.GridAtlas.Persistence, Version=1.36.1.8206, Culture=neutral, PublicKeyToken=null">
  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">900001</Id>
  <Atlas z:Id="2">
    <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">900001</Id>
    <AcquisitionDateTime>2025-01-01T09:05:30.1234567+01:00</AcquisitionDateTime>
    <Name i:nil="true"/>
    <TilesEfficient z:Id="3">
      <_items z:Id="4" z:Size="4">
        <TileXml z:Id="5">
          <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">900101</Id>
          <AtlasPixelPosition xmlns:a="http://schemas.datacontract.org/2004/07/System.Drawing">
            <a:height>592</a:height>
            <a:width>833</a:width>
            <a:x>0</a:x>
            <a:y>0</a:y>
          </AtlasPixelPosition>
          <Nodes xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays" z:Id="6">
            <Version xmlns="" z:Id="7">2</Version>
            <Comparer xmlns="" z:Id="8"/>
            <HashSize xmlns="" z:Id="9">3</HashSize>
            <KeyValuePairs xmlns="" z:Id="10" z:Size="2">
              <KeyValuePairOfintNodeXml30oatNZW xmlns="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
                <key>1001</key>
                <value xmlns:b="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence" z:Id="11">
                  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">1001</Id>
                  <b:Category>1</b:Category>
                  <b:PositionOnTheAtlas xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                    <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>100.5</d:x><d:y>200.25</d:y></c:Center>
                    <c:Physical xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>4E-05</d:height><d:width>4E-05</d:width><d:x>-0.0001</d:x><d:y>0.0002</d:y></c:Physical>
                    <c:Quality>1</c:Quality>
                    <c:Rotation>0.25</c:Rotation>
                    <c:Shear>0</c:Shear>
                    <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>40</d:height><d:width>42</d:width></c:Size>
                  </b:PositionOnTheAtlas>
                  <b:StagePosition xmlns:c="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><c:A>0</c:A><c:B>0</c:B><c:X>-0.00011</c:X><c:Y>0.00021</c:Y><c:Z>0</c:Z></b:StagePosition>
                  <b:TilePositions z:Id="12">
                    <b:_items z:Id="13" z:Size="4">
                      <b:TilePositionXml z:Id="14">
                        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">901001</Id>
                        <b:NodePosition xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                          <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>10</d:x><d:y>20</d:y></c:Center>
                          <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>300</d:height><d:width>310</d:width></c:Size>
                        </b:NodePosition>
                        <b:TileId>900101</b:TileId>
                      </b:TilePositionXml>
                      <b:TilePositionXml z:Id="15">
                        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">901002</Id>
                        <b:NodePosition xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                          <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>810</d:x><d:y>20</d:y></c:Center>
                          <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>300</d:height><d:width>310</d:width></c:Size>
                        </b:NodePosition>
                        <b:TileId>900102</b:TileId>
                      </b:TilePositionXml>
                      <b:TilePositionXml i:nil="true"/>
                      <b:TilePositionXml i:nil="true"/>
                    </b:_items>
                    <b:_size>2</b:_size>
                  </b:TilePositions>
                </value>
              </KeyValuePairOfintNodeXml30oatNZW>
              <KeyValuePairOfintNodeXml30oatNZW xmlns="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
                <key>1002</key>
                <value xmlns:b="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence" z:Id="16">
                  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">1002</Id>
                  <b:Category>2</b:Category>
                  <b:PositionOnTheAtlas xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                    <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>300</d:x><d:y>400</d:y></c:Center>
                    <c:Physical xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>4E-05</d:height><d:width>4E-05</d:width><d:x>0.0001</d:x><d:y>0.0003</d:y></c:Physical>
                    <c:Rotation>0.25</c:Rotation>
                    <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>41</d:height><d:width>43</d:width></c:Size>
                  </b:PositionOnTheAtlas>
                  <b:StagePosition xmlns:c="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><c:X>0.00012</c:X><c:Y>0.00031</c:Y></b:StagePosition>
                  <b:TilePositions z:Id="17">
                    <b:_items z:Id="18" z:Size="1">
                      <b:TilePositionXml z:Id="19">
                        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">901003</Id>
                        <b:NodePosition xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                          <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>300</d:x><d:y>400</d:y></c:Center>
                          <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>290</d:height><d:width>305</d:width></c:Size>
                        </b:NodePosition>
                        <b:TileId>900101</b:TileId>
                      </b:TilePositionXml>
                    </b:_items>
                    <b:_size>1</b:_size>
                  </b:TilePositions>
                </value>
              </KeyValuePairOfintNodeXml30oatNZW>
            </KeyValuePairs>
          </Nodes>
          <TileImageReference xmlns:a="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types" z:Id="20">
            <a:BaseFileName z:Id="21">Tile_900101_0_900100</a:BaseFileName>
            <a:FileFormat>Mrc</a:FileFormat>
          </TileImageReference>
        </TileXml>
        <TileXml z:Id="22">
          <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">900102</Id>
          <AtlasPixelPosition xmlns:a="http://schemas.datacontract.org/2004/07/System.Drawing">
            <a:height>592</a:height>
            <a:width>833</a:width>
            <a:x>800</a:x>
            <a:y>0</a:y>
          </AtlasPixelPosition>
          <Nodes xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays" z:Id="23">
            <Version xmlns="" z:Id="24">1</Version>
            <Comparer xmlns="" z:Ref="8" i:nil="true"/>
            <HashSize xmlns="" z:Id="25">3</HashSize>
            <KeyValuePairs xmlns="" z:Id="26" z:Size="1">
              <KeyValuePairOfintNodeXml30oatNZW xmlns="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
                <key>1003</key>
                <value xmlns:b="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence" z:Id="27">
                  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">1003</Id>
                  <b:Category>1</b:Category>
                  <b:PositionOnTheAtlas xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                    <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>900</d:x><d:y>100</d:y></c:Center>
                    <c:Rotation>NaN</c:Rotation>
                    <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>39</d:height><d:width>40</d:width></c:Size>
                  </b:PositionOnTheAtlas>
                  <b:TilePositions z:Id="28">
                    <b:_items z:Id="29" z:Size="0"/>
                    <b:_size>0</b:_size>
                  </b:TilePositions>
                </value>
              </KeyValuePairOfintNodeXml30oatNZW>
            </KeyValuePairs>
          </Nodes>
          <TileImageReference xmlns:a="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types" z:Id="30">
            <a:BaseFileName z:Id="31">Tile_900102_1_900100</a:BaseFileName>
            <a:FileFormat>Mrc</a:FileFormat>
          </TileImageReference>
        </TileXml>
        <TileXml i:nil="true"/>
        <TileXml i:nil="true"/>
      </_items>
      <_size>2</_size>
      <_version>2</_version>
    </TilesEfficient>
  </Atlas>
  <Description z:Id="32">Atlas for autoloader slot 1</Description>
  <Name z:Id="33">Atlas</Name>
  <StorageFolder z:Id="34">Z:\mini\atlas\Supervisor_20250101_090000_mini_Atlas\Sample1</StorageFolder>
</AtlasSessionXml>
